"""What both engines of ``satecco upscale`` share: the inputs, where their outputs go, the settings
that cut and write each video, what became of each input, and the run report.

An input is a video file, a folder of frames (PNG, TIFF, JPEG, DPX, EXR), or a pyarrow filesystem URI of either. The command
line may name them through folders of videos, globs and CSV/Parquet manifests (:func:`expand_inputs`).
Each input has an output *name*: its stem, or, for the videos found in a folder, their path relative
to that folder without the suffix (``--recursive`` walks its subfolders). The output is
``OUTDIR/<name><suffix>.<ext>`` (:func:`assign_outputs`), and it is never an input: an output equal to
an input path, or one that an earlier input already claims, is refused before any work.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from satecco import storage
from satecco.video.codecs import DEFAULT_ENCODER, EncoderSettings, frame_rate, get_codec
from satecco.video.formats import EXTENSIONS, FOLDER_FRAME_RATE, output_suffix

MANIFESTS = (".csv", ".parquet")
#: One JSON line per input, written to OUTDIR at the end of a run.
REPORT = "satecco-report.jsonl"


@dataclass(frozen=True)
class VideoSettings:
    """How each video is cut into windows, seeded, read and written; ``suffix`` is added to each output's
    name, and ``overwrite`` replaces outputs that exist (else they are skipped). ``deinterlace``:
    ``auto`` (inputs flagged interlaced), ``on`` or ``off``; ``allow_fewer_bits``: write deep inputs at
    the codec's depth rather than refuse them (see :mod:`satecco.preflight`). ``outscale`` (a factor up
    to the model's), ``height`` and ``max_height``: the size written (:func:`satecco.preflight.output_size`).
    ``encoder``: the codec's settings (:class:`~satecco.video.codecs.EncoderSettings`); ``fps``: the frame
    rate of frame folders given as inputs (``"24000/1001"``; None: 30). ``frames`` ``(A, B)`` (B None: to
    the end) or ``preview`` (seconds from the middle): the part of each input that is upscaled
    (:func:`satecco.preflight.excerpt`)."""

    window: int = 6
    window_overlap: int = 2
    seed: int = 0
    codec: str = "h264"
    encoder: EncoderSettings = DEFAULT_ENCODER
    fps: str | None = None
    suffix: str = ""
    overwrite: bool = False
    deinterlace: str = "auto"
    allow_fewer_bits: bool = False
    outscale: float | None = None
    height: int | None = None
    max_height: int | None = None
    frames: tuple[int, int | None] | None = None
    preview: float | None = None

    def __post_init__(self):
        if self.outscale is not None and self.height is not None:
            raise ValueError("give --outscale or --height, not both")
        self.encoder.check(get_codec(self.codec))

    @property
    def folder_rate(self) -> Fraction:
        """The frame rate of a frame folder given as input."""
        return frame_rate(self.fps) if self.fps else FOLDER_FRAME_RATE


@dataclass(frozen=True)
class Input:
    """One input and the name of its output under OUTDIR (``/``-separated, without a suffix)."""

    source: str
    name: str

    @classmethod
    def of(cls, source: str | Input) -> Input:
        """``source`` as an input whose output is named after its stem."""
        return source if isinstance(source, Input) else cls(str(source), Path(str(source).rstrip("/")).stem)


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
    discarded_parts: int = 0  # Ray engine: part files of an earlier run made with other settings
    notes: list[str] = field(default_factory=list)  # streams transcoded or dropped, deinterlacing, ...


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


def expand_inputs(items: Iterable[str], recursive: bool = False) -> list[Input]:
    """Files, folders of videos, frame folders, glob patterns and manifests -> inputs, in order,
    deduplicated.

    A folder holding video files stands for those files (with ``recursive``, those of its subfolders
    too), each named by its path relative to the folder; any other folder is taken as a frame folder.
    A ``.csv`` or ``.parquet`` file is a manifest whose ``path`` column lists the inputs. Paths that do
    not exist are kept, so that they are reported as failed inputs.
    """
    found: dict[str, Input] = {}
    for item in items:
        path = Path(item)
        if storage.is_remote(item):
            listed = storage.list_files(item, recursive)
            videos = [f for f in listed or [] if Path(f).suffix.lower() in EXTENSIONS]
            named = [Input(f, _stem(f[len(item.rstrip("/")) + 1:])) for f in videos] if listed else [Input.of(item)]
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            videos = sorted(p for p in path.glob(pattern) if p.suffix.lower() in EXTENSIONS and p.is_file())
            named = [Input(str(p), _stem(p.relative_to(path).as_posix())) for p in videos] or [Input.of(item)]
        elif path.is_file() and path.suffix.lower() in MANIFESTS:
            named = expand_inputs(read_manifest(path))
        elif not path.exists() and glob.has_magic(item):
            # A pattern that matches nothing stays an input, so that it is reported, not silently dropped.
            named = [Input.of(p) for p in sorted(glob.glob(item))] or [Input.of(item)]
        else:
            named = [Input.of(str(path))]
        for entry in named:
            found.setdefault(entry.source, entry)
    return list(found.values())


def _stem(relative: str) -> str:
    """A path relative to a folder given as input, without its suffix: ``a/b/clip.mp4`` -> ``a/b/clip``."""
    folder, _, name = relative.rstrip("/").rpartition("/")
    return f"{folder}/{Path(name).stem}" if folder else Path(name).stem


def output_path(name: str, outdir: str | Path, settings: VideoSettings) -> str:
    """``OUTDIR/<name><suffix>.<ext>`` (a folder, for the ``png`` codec); OUTDIR may be a URI."""
    return storage.join(outdir, name + settings.suffix + output_suffix(settings.codec))


def assign_outputs(inputs: list[Input | str], outdir: str | Path, settings: VideoSettings
                   ) -> tuple[dict[str, str], list[VideoResult]]:
    """Each input's output path, and the inputs refused before any work: an output that is an input
    path (it would destroy the input), and an output that an earlier input already claims (one line
    naming both). Returns ``({source: output}, refused results)``, in the inputs' order."""
    inputs = [Input.of(entry) for entry in inputs]
    sources = {storage.canonical(entry.source): entry.source for entry in inputs}
    targets: dict[str, str] = {}
    claimed: dict[str, str] = {}
    refused = []
    for entry in inputs:
        if entry.source in targets:
            continue  # named twice: one output
        target = output_path(entry.name, outdir, settings)
        key = storage.canonical(target)
        if key in sources:
            refused.append(_refused(entry.source, f"its output {target} would overwrite the input "
                                                  f"{sources[key]}; choose another -o or a --suffix"))
        elif key in claimed:
            refused.append(_refused(entry.source, f"its output {target} is already the output of "
                                                  f"{claimed[key]}; give them different names or folders"))
        else:
            claimed[key] = entry.source
            targets[entry.source] = target
    return targets, refused


def _refused(source: str, reason: str) -> VideoResult:
    return VideoResult(source, None, "failed", error=f"{source}: refused: {reason}")


def outdir_failures(sources: list[str], outdir: str | Path) -> list[VideoResult]:
    """Every input failed with the reason when OUTDIR cannot be created or written; else ``[]``.
    Checked before any model work."""
    try:
        storage.make_folder(outdir)
    except OSError as error:
        return [VideoResult(s, None, "failed", error=f"{s}: cannot create or write {outdir}: {error}")
                for s in sources]
    return []


class RunReport:
    """``OUTDIR/satecco-report.jsonl``: one JSON line per input.

    A local OUTDIR gets each input's line as soon as the input ends (refused and skipped ones first),
    so a long run can be followed and a killed one leaves its record; :meth:`close` rewrites the file
    whole, in the inputs' order. Object stores cannot append: a remote OUTDIR gets the report at the end.
    """

    def __init__(self, outdir: str | Path):
        self.outdir = str(outdir)
        self.path = storage.join(outdir, REPORT)
        self.live = not storage.is_remote(self.path)
        if self.live:  # a fresh report: no line of an earlier run stays
            with storage.atomic_output(self.path) as partial:
                partial.write_text("")

    def add(self, result: VideoResult) -> None:
        if self.live:
            with open(self.path, "a") as report:
                report.write(json.dumps(asdict(result)) + "\n")

    def close(self, results: list[VideoResult], busy: dict[str, float] | None = None) -> None:
        """The whole report, and the page to look at beside it (:mod:`satecco.run_report`; ``busy``: the
        Ray engine's busy seconds per stage)."""
        with storage.atomic_output(self.path) as partial:
            partial.write_text("".join(json.dumps(asdict(r)) + "\n" for r in results))
        from satecco.run_report import write_run_report

        write_run_report(self.outdir, results, busy)
