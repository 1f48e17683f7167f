"""The in-process (``--engine local``) upscaler: inputs in, one output video per input.

Each input streams through decode -> windows -> :class:`SATeCoPipeline` -> blending -> encode, and is
written to a temporary name that only becomes the final path once complete. One failing input is
reported and does not stop the others.
"""

from __future__ import annotations

import glob
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satecco import storage
from satecco.errors import SateccoError, VideoError
from satecco.video_io import EXTENSIONS, VideoWriter, output_suffix, probe, read_frames
from satecco.windows import TemporalBlender, iter_windows, quantize

if TYPE_CHECKING:  # torch stays out of the Ray engine's driver, which imports this module
    from satecco.pipeline import SATeCoPipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSettings:
    """How each video is cut and written."""

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


MANIFESTS = (".csv", ".parquet")


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


def upscale_to(pipeline: SATeCoPipeline, source: str, target: str, settings: VideoSettings,
               on_frames: Callable[[int], None] = lambda n: None) -> int:
    """:func:`upscale_video` for local paths or URIs: remote inputs are fetched, remote outputs are
    written locally and uploaded whole."""
    try:
        local_source = str(storage.fetch(source)) if storage.is_remote(source) else source
        if not storage.is_remote(target):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            return upscale_video(pipeline, local_source, Path(target), settings, on_frames)
        with tempfile.TemporaryDirectory(prefix="satecco-") as tmp:
            local_target = Path(tmp) / target.rsplit("/", 1)[-1]
            frames = upscale_video(pipeline, local_source, local_target, settings, on_frames)
            storage.upload(local_target, target)
            return frames
    except VideoError as error:
        raise VideoError(source, error.cause) from error  # name the input as the user gave it


def upscale_video(pipeline: SATeCoPipeline, source: str, target: Path, settings: VideoSettings,
                  on_frames: Callable[[int], None] = lambda n: None) -> int:
    """Upscale one video file or frame folder to ``target``; returns the frame count written."""
    info = probe(source)
    scale = pipeline.scale
    blender = TemporalBlender(settings.window_overlap)
    written = 0
    with VideoWriter(target, info.width * scale, info.height * scale, info.frame_rate, codec=settings.codec,
                     crf=settings.crf, audio_from=source if info.has_audio else None) as writer:
        def emit(frames: list[tuple[int, np.ndarray]]) -> None:
            nonlocal written
            for _, frame in frames:
                writer.write(quantize(frame))
            written += len(frames)
            on_frames(len(frames))

        for start, window in iter_windows(read_frames(source), settings.window, settings.window_overlap):
            emit(blender.add(start, pipeline.upscale_window(window, start, settings.seed)))
        emit(blender.finish())
    return written


def _known_frames(inputs: list[str]) -> int | None:
    """Total frame count for the progress bar, when every input's container states it."""
    total = 0
    for source in inputs:
        if storage.is_remote(source):
            return None
        try:
            count = probe(source).num_frames
        except SateccoError:
            continue  # reported when its turn comes
        if count is None:
            return None
        total += count
    return total


def run_local(inputs: list[str], outdir: str | Path, pipeline: SATeCoPipeline, settings: VideoSettings,
              progress: bool = True) -> list[VideoResult]:
    """Upscale every input into ``outdir`` in this process; returns one result per input."""
    from tqdm import tqdm

    results = []
    bar = tqdm(total=_known_frames(inputs) if progress else None, unit="frame", disable=not progress,
               dynamic_ncols=True)
    try:
        for index, source in enumerate(inputs, 1):
            target = output_path(source, outdir, settings.codec)
            bar.set_description(f"[{index}/{len(inputs)}] {Path(source).name}")
            started = time.perf_counter()
            try:
                frames = upscale_to(pipeline, source, target, settings, on_frames=bar.update)
                results.append(VideoResult(source, target, "ok", frames, time.perf_counter() - started))
            except Exception as error:  # one bad input must not stop the others
                if not isinstance(error, SateccoError | OSError):
                    log.debug("unexpected failure on %s", source, exc_info=True)
                message = str(error) if str(error).startswith(source) else f"{source}: {error}"
                results.append(VideoResult(source, None, "failed", 0, time.perf_counter() - started, message))
                bar.write(f"satecco: error: {message}", file=sys.stderr)
    finally:
        bar.close()
    return results
