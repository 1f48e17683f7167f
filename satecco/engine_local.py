"""The in-process engine (``satecco upscale --engine local``): every input, one after another, here.

Each input streams through decode -> windows -> :class:`SATeCoPipeline` -> blending -> encode, and is
written under a hidden name that becomes the output path only once complete. One failing input is
reported and does not stop the others.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satecco import storage
from satecco.errors import SateccoError, VideoError, input_error
from satecco.inputs import Input, RunReport, VideoResult, VideoSettings, assign_outputs, outdir_failures
from satecco.video.read import probe, read_frames
from satecco.video.write import VideoWriter
from satecco.windows import TemporalBlender, iter_windows, quantize

if TYPE_CHECKING:
    from satecco.pipeline import SATeCoPipeline

log = logging.getLogger(__name__)


def upscale_video(pipeline: SATeCoPipeline, source: str, target: str | Path, settings: VideoSettings,
                  on_frames: Callable[[int], None] = lambda n: None) -> int:
    """Upscale one video file or frame folder (local or URI) to ``target`` (local or URI); returns the
    frame count written."""
    local_source = storage.local_copy(source)
    try:
        return _upscale_file(pipeline, local_source, target, settings, on_frames)
    except VideoError as error:
        if error.path != local_source:
            raise
        raise VideoError(source, error.cause) from error  # name the input as the user gave it


def _upscale_file(pipeline: SATeCoPipeline, source: str, target: str | Path, settings: VideoSettings,
                  on_frames: Callable[[int], None]) -> int:
    info = probe(source)
    blender = TemporalBlender(settings.window_overlap)
    written = 0
    with storage.atomic_output(target, replace_folder=settings.overwrite) as local_target, \
            VideoWriter(local_target, info.width * pipeline.scale, info.height * pipeline.scale, info.frame_rate,
                        codec=settings.codec, crf=settings.crf,
                        audio_from=source if info.has_audio else None) as writer:
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


def known_frames(inputs: list[str]) -> int | None:
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


def upscale_locally(inputs: list[Input | str], outdir: str | Path,
                    pipeline: SATeCoPipeline | Callable[[], SATeCoPipeline], settings: VideoSettings,
                    progress: bool = True) -> list[VideoResult]:
    """Upscale every input into ``outdir`` in this process; returns one result per input, in order, and
    writes the run report (:class:`~satecco.inputs.RunReport`).

    OUTDIR and the outputs are checked first (:func:`~satecco.inputs.assign_outputs`); an output that
    exists is skipped unless ``settings.overwrite``. ``pipeline`` may be a function that builds it: it
    is then built only once OUTDIR is known to be writable.
    """
    from tqdm import tqdm

    order = {source: i for i, source in enumerate(dict.fromkeys(Input.of(entry).source for entry in inputs))}
    unwritable = outdir_failures(list(order), outdir)
    if unwritable:
        for result in unwritable:
            print(f"satecco: error: {result.error}", file=sys.stderr)
        return unwritable
    pipeline = pipeline() if callable(pipeline) else pipeline
    targets, results = assign_outputs(inputs, outdir, settings)
    report = RunReport(outdir)
    bar = tqdm(total=known_frames(list(targets)) if progress else None, unit="frame", disable=not progress,
               dynamic_ncols=True)
    for result in results:
        report.add(result)
        bar.write(f"satecco: error: {result.error}", file=sys.stderr)
    with bar:
        for index, (source, target) in enumerate(targets.items(), 1):
            bar.set_description(f"[{index}/{len(targets)}] {Path(source).name}")
            results.append(_upscale_one(pipeline, source, target, settings, bar))
            report.add(results[-1])
    results.sort(key=lambda r: order[r.input])
    report.close(results)
    return results


def _upscale_one(pipeline: SATeCoPipeline, source: str, target: str, settings: VideoSettings, bar) -> VideoResult:
    """One input's result; a failure is reported on ``bar`` and does not stop the others."""
    if not settings.overwrite and storage.exists(target):
        return VideoResult(source, target, "skipped")
    started = time.perf_counter()
    try:
        frames = upscale_video(pipeline, source, target, settings, on_frames=bar.update)
        return VideoResult(source, target, "ok", frames, time.perf_counter() - started)
    except Exception as error:  # one bad input must not stop the others
        if not isinstance(error, SateccoError | OSError):
            log.debug("unexpected failure on %s", source, exc_info=True)
        message = input_error(source, error)
        bar.write(f"satecco: error: {message}", file=sys.stderr)
        return VideoResult(source, None, "failed", 0, time.perf_counter() - started, message)
