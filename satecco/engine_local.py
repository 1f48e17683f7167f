"""The in-process engine (``satecco upscale --engine local``): every input, one after another, here.

Each input streams through decode -> windows -> :class:`SATeCoPipeline` -> blending -> encode, and is
written under a hidden name that becomes the output path only once complete. One failing input is
reported and does not stop the others.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satecco import storage
from satecco.errors import SateccoError, VideoError, input_error
from satecco.inputs import Input, RunReport, VideoResult, VideoSettings, assign_outputs, outdir_failures
from satecco.preflight import Prepared, prepare, prepare_input
from satecco.video.concat import concat_segments
from satecco.video.formats import output_suffix
from satecco.video.read import probe, read_frames
from satecco.video.write import VideoWriter
from satecco.windows import TemporalBlender, batched, iter_windows, quantize

if TYPE_CHECKING:
    from satecco.pipeline import SATeCoPipeline

log = logging.getLogger(__name__)


def upscale_video(pipeline: SATeCoPipeline, source: str, target: str | Path, settings: VideoSettings,
                  on_frames: Callable[[int], None] = lambda n: None, prepared: Prepared | None = None) -> int:
    """Upscale one video file or frame folder (local or URI) to ``target`` (local or URI), keeping what
    it carries besides pictures; returns the frame count written. ``prepared``: its preflight, when the
    caller has it (:func:`~satecco.preflight.prepare`)."""
    local_source = storage.local_copy(source)
    try:
        prepared = prepared or prepare(local_source, settings)
        return _upscale_file(pipeline, local_source, target, settings, prepared, on_frames)
    except VideoError as error:
        if error.path != local_source:
            raise
        raise VideoError(source, error.cause) from error  # name the input as the user gave it


def _upscale_file(pipeline: SATeCoPipeline, source: str, target: str | Path, settings: VideoSettings,
                  prepared: Prepared, on_frames: Callable[[int], None]) -> int:
    """Frames are encoded to a hidden scratch file beside the output, then remuxed with the source's
    streams, metadata and timestamps (the join the Ray engine does, with one part)."""
    info = probe(source)
    encoding = prepared.encoding
    blender = TemporalBlender(settings.window_overlap)
    written = 0
    with storage.atomic_output(target, replace_folder=settings.overwrite) as local_target, \
            tempfile.TemporaryDirectory(dir=Path(local_target).parent, prefix=".satecco-") as scratch:
        frames_file = Path(scratch) / f"frames{output_suffix(encoding.codec)}"
        upscaled = (info.width * pipeline.scale, info.height * pipeline.scale)
        with VideoWriter.for_encoding(frames_file, prepared.frame_rate, encoding, upscaled) as writer:
            def emit(frames: list[tuple[int, np.ndarray]]) -> None:
                nonlocal written
                for _, frame in frames:
                    writer.write(quantize(frame, encoding.dtype))
                written += len(frames)
                on_frames(len(frames))

            frames = read_frames(source, prepared.first, prepared.first + prepared.frames, bits=encoding.bits,
                                 deinterlace=prepared.deinterlace)
            for group in batched(iter_windows(frames, settings.window, settings.window_overlap), pipeline.batch):
                starts = [start for start, _ in group]
                outputs = pipeline.run_windows(np.stack([window for _, window in group]), starts, settings.seed)
                for start, output in zip(starts, outputs, strict=True):
                    emit(blender.add(start, output["frames"]))
            emit(blender.finish())
        concat_segments([frames_file], local_target, prepared.frame_rate, encoding.codec, source=source,
                        excerpt=prepared.excerpt)
    return written


def preflight(targets: dict[str, str], settings: VideoSettings) -> tuple[dict[str, Prepared], list[VideoResult]]:
    """:func:`~satecco.preflight.prepare` every input whose output is to be made (remote ones are fetched
    into the cache); returns the prepared inputs and the results of the others (skipped, refused,
    unreadable), before any model work."""
    prepared, results = {}, []
    for source, target in targets.items():
        if not settings.overwrite and storage.exists(target):
            results.append(VideoResult(source, target, "skipped"))
            continue
        ready = prepare_input(source, settings)
        if isinstance(ready, str):
            results.append(VideoResult(source, None, "failed", error=ready))
        else:
            prepared[source] = ready
    return prepared, results


def upscale_locally(inputs: list[Input | str], outdir: str | Path,
                    pipeline: SATeCoPipeline | Callable[[], SATeCoPipeline], settings: VideoSettings,
                    progress: bool = True) -> list[VideoResult]:
    """Upscale every input into ``outdir`` in this process; returns one result per input, in order, and
    writes the run report (:class:`~satecco.inputs.RunReport`).

    OUTDIR and the outputs are checked first (:func:`~satecco.inputs.assign_outputs`); an output that
    exists is skipped unless ``settings.overwrite``; every other input goes through the preflight
    (:func:`preflight`). ``pipeline`` may be a function that builds it: it is then built only once
    OUTDIR is known to be writable and some input is ready.
    """
    from tqdm import tqdm

    order = {source: i for i, source in enumerate(dict.fromkeys(Input.of(entry).source for entry in inputs))}
    unwritable = outdir_failures(list(order), outdir)
    if unwritable:
        for result in unwritable:
            print(f"satecco: error: {result.error}", file=sys.stderr)
        return unwritable
    targets, results = assign_outputs(inputs, outdir, settings)
    ready, settled = preflight(targets, settings)
    results += settled
    report = RunReport(outdir)
    bar = tqdm(total=sum(p.frames for p in ready.values()), unit="frame", disable=not progress, dynamic_ncols=True)
    for result in results:
        report.add(result)
        if result.error:
            bar.write(f"satecco: error: {result.error}", file=sys.stderr)
    if ready and callable(pipeline):
        pipeline = pipeline()
    with bar:
        for index, (source, prepared) in enumerate(ready.items(), 1):
            bar.set_description(f"[{index}/{len(ready)}] {Path(source).name}")
            results.append(_upscale_one(pipeline, source, targets[source], settings, prepared, bar))
            report.add(results[-1])
    results.sort(key=lambda r: order[r.input])
    report.close(results)
    return results


def _upscale_one(pipeline: SATeCoPipeline, source: str, target: str, settings: VideoSettings, prepared: Prepared,
                 bar) -> VideoResult:
    """One input's result; a failure is reported on ``bar`` and does not stop the others."""
    started = time.perf_counter()
    for note in prepared.notes:
        bar.write(f"satecco: {source}: {note}", file=sys.stderr)
    try:
        frames = upscale_video(pipeline, source, target, settings, on_frames=bar.update, prepared=prepared)
        return VideoResult(source, target, "ok", frames, time.perf_counter() - started, notes=list(prepared.notes))
    except Exception as error:  # one bad input must not stop the others
        if not isinstance(error, SateccoError | OSError):
            log.debug("unexpected failure on %s", source, exc_info=True)
        message = input_error(source, error)
        bar.write(f"satecco: error: {message}", file=sys.stderr)
        return VideoResult(source, None, "failed", 0, time.perf_counter() - started, message)
