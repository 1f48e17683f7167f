"""What both engines of ``satecco upscale`` share: the inputs, where their outputs go, the settings
that cut and write each video, what became of each input, and the run report.

An input is a video file, a folder of PNG frames, or a pyarrow filesystem URI of either. The command
line may name them through folders of videos, globs and CSV/Parquet manifests (:func:`expand_inputs`).
Each input becomes ``OUTDIR/<input stem>.<ext>`` (:func:`output_path`).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from satecco import storage
from satecco.video.formats import EXTENSIONS, output_suffix

MANIFESTS = (".csv", ".parquet")
#: One JSON line per input, written to OUTDIR at the end of a run.
REPORT = "satecco-report.jsonl"


@dataclass(frozen=True)
class VideoSettings:
    """How each video is cut into windows, seeded and written."""

    window: int = 6
    window_overlap: int = 2
    seed: int = 0
    codec: str = "h264"
    crf: int = 18


@dataclass
class VideoResult:
    """What became of one input."""

    input: str
    output: str | None
    status: str  # "ok", "skipped" (output already there) or "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    reused_parts: int = 0  # Ray engine: part files left by an interrupted run and not recomputed


def read_manifest(path: Path) -> list[str]:
    """The ``path`` column of a CSV or Parquet manifest; relative paths are taken from the manifest's folder."""
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    try:
        table = pa.parquet.read_table(path) if path.suffix.lower() == ".parquet" else pa.csv.read_csv(path)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: cannot read manifest ({error})") from error
    if "path" not in table.column_names:
        raise ValueError(f"{path}: manifest has no 'path' column (columns: {table.column_names})")
    entries = [str(p) for p in table.column("path").to_pylist() if p]
    return [e if "://" in e or Path(e).is_absolute() else str(path.parent / e) for e in entries]


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files, folders of videos, frame folders, glob patterns and manifests -> input paths, in order,
    deduplicated.

    A folder holding video files stands for those files; any other folder is taken as a frame folder.
    A ``.csv`` or ``.parquet`` file is a manifest whose ``path`` column lists the inputs. Paths that
    do not exist are kept, so that they are reported as failed inputs.
    """
    found: list[str] = []
    for item in items:
        path = Path(item)
        if storage.is_remote(item):
            listed = storage.list_files(item)
            found.extend([f for f in listed if Path(f).suffix.lower() in EXTENSIONS] if listed else [item])
        elif path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
            found.extend(str(p) for p in videos) if videos else found.append(str(path))
        elif path.is_file() and path.suffix.lower() in MANIFESTS:
            found.extend(expand_inputs(read_manifest(path)))
        elif not path.exists() and glob.has_magic(item):
            found.extend(sorted(glob.glob(item)))
        else:
            found.append(str(path))
    return list(dict.fromkeys(found))


def output_path(source: str, outdir: str | Path, codec: str) -> str:
    """``OUTDIR/<input stem>.<ext>`` (a folder, for the ``png`` codec); OUTDIR may be a URI."""
    return storage.join(outdir, Path(source.rstrip("/")).stem + output_suffix(codec))


def write_report(results: list[VideoResult], outdir: str) -> None:
    """``OUTDIR/satecco-report.jsonl``: one line per input, written whole (atomically, or uploaded)."""
    with storage.atomic_output(storage.join(outdir, REPORT)) as path:
        path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in results))
