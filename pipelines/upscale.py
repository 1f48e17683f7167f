"""The Ray engine of ``satecco upscale``: a streaming Ray Data graph over segments of many videos.

    segments -> decode (CPU tasks, PyAV) -> stage actor pools (upscale+encode | denoise | decode+refine,
    fused as configs/pipeline/*.yaml say) -> write part files (CPU tasks) -> join tasks

The driver plans the segments (remote inputs are probed by tasks), streams the results, and starts a
task that joins a video's parts as soon as its last part lands: it blends the few frames neighbouring
segments share (each segment keeps its share of their blend beside its part, so no window is computed
twice), and remuxes parts and blended frames without re-encoding the parts; no shuffle, no
``groupby``. Part files are kept under ``OUTDIR/.satecco-parts/`` until their video is joined, so a
rerun after a crash skips finished videos and finished parts alike. Every run writes
``OUTDIR/satecco-report.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.config import PipelineConfig, default_pipeline_config
from pipelines.stages import (
    SATeCoStage,
    decode_segment,
    load_share,
    part_name,
    parts_folder,
    probe_source,
    seam_path,
    write_segment,
)
from satecco import storage
from satecco.cluster import init_ray
from satecco.errors import SateccoError
from satecco.presets import ModelSpec
from satecco.upscale import VideoResult, VideoSettings, output_path
from satecco.video_io import VideoWriter, concat_segments, output_suffix
from satecco.windows import blend_seam, plan_segments, quantize

log = logging.getLogger(__name__)
REPORT = "satecco-report.jsonl"


@dataclass
class VideoPlan:
    """One input's work: its target, its parts, and how many parts are still to come."""

    source: str
    target: str
    frame_rate: str
    has_audio: bool
    frames: int
    parts: list[str]
    seams: list[int]  # frames shared by part i and part i + 1, blended by the join
    pending: int
    reused: int
    started: float


def probe_inputs(sources: list[str], decode_cpus: float, address: str | None) -> dict[str, tuple | str]:
    """:func:`probe_source` of every input: local ones here (a header read and a packet count), remote
    ones as Ray tasks in parallel, so that the driver never downloads the archive it plans."""
    remote = [s for s in sources if storage.is_remote(s)]
    probed = {s: probe_source(s) for s in sources if not storage.is_remote(s)}
    if remote:
        init_ray(address)  # before Ray's import: it sets what Ray reads on import
        import ray

        task = ray.remote(num_cpus=decode_cpus)(probe_source)
        probed.update(zip(remote, ray.get([task.remote(s) for s in remote]), strict=True))
    return probed


def plan_videos(inputs: list[str], outdir: str, settings: VideoSettings, config: PipelineConfig,
                address: str | None = None) -> tuple[list[VideoResult], dict[str, VideoPlan], list[dict]]:
    """Probe inputs, skip finished videos and parts; returns (final results so far, plans, segment rows)."""
    results, todo = [], []
    for source in inputs:
        target = output_path(source, outdir, settings.codec)
        if storage.exists(target):
            results.append(VideoResult(source, target, "skipped", 0, 0.0, None))
        else:
            todo.append(source)
    plans, rows = {}, []
    for source, probed in probe_inputs(todo, config.decode_cpus, address).items():
        if isinstance(probed, str):
            results.append(VideoResult(source, None, "failed", 0, 0.0, probed))
            continue
        frame_rate, has_audio, frames = probed
        target = output_path(source, outdir, settings.codec)
        folder = parts_folder(outdir, target)
        segments = plan_segments(frames, settings.window, settings.window_overlap, config.windows_per_segment)
        parts = [storage.join(folder, part_name(s.index, settings.codec)) for s in segments]
        seams = [s.read_stop - s.emit_stop for s in segments[:-1]]
        plan = VideoPlan(source, target, frame_rate, has_audio, frames, parts, seams, 0, 0, time.perf_counter())
        for segment, part in zip(segments, parts, strict=True):
            if storage.exists(part):
                plan.reused += 1  # finished by an earlier run
                continue
            plan.pending += 1
            rows.append({"video": source, "segment": segment.index,
                         "windows": list(segment.windows), "length": segment.length,
                         "emit_start": segment.emit_start, "emit_stop": segment.emit_stop, "part": str(part),
                         "frame_rate": plan.frame_rate, "codec": settings.codec, "crf": settings.crf,
                         "error": ""})
        if not storage.is_remote(folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
        plans[source] = plan
    return results, plans, rows


def build_dataset(rows: list[dict], spec: ModelSpec, settings: VideoSettings, config: PipelineConfig):
    """The Ray Data graph over segment rows (lazy; nothing runs until it is iterated)."""
    import ray
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_items(rows, override_num_blocks=max(len(rows), 1))
    # Decoding is CPU work on small LR frames: plain tasks, a fraction of a CPU each.
    ds = ds.map(decode_segment, num_cpus=config.decode_cpus)
    for group in config.groups:
        # One actor per model replica: weights load once in __init__; batch_size=1 segment (windows
        # inside a segment run one after another, so memory is that of one window). No more actors
        # than segments: an actor with nothing to do would only cost its start-up.
        ds = ds.map_batches(
            SATeCoStage, fn_constructor_kwargs=dict(spec=spec, parts=group.parts, name=group.name,
                                                    seed=settings.seed, overlap=settings.window_overlap,
                                                    threads=group.threads),
            # One segment in flight per actor: a segment keeps an actor busy for seconds to minutes, and
            # one queued behind it would wait there while another actor idles.
            compute=ActorPoolStrategy(min_size=min(group.min_actors, len(rows)),
                                      max_size=min(group.max_actors, len(rows)), max_tasks_in_flight_per_actor=1),
            batch_size=group.batch_size, num_gpus=group.num_gpus, num_cpus=group.num_cpus,
            # OpenMP threads that spin while waiting starve other actors on the same cores.
            runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
        )  # Ray Data restarts a crashed actor and retries its segment (max_restarts=-1 by default)
    # Encoding the 4x frames is CPU work too; tasks write each part atomically.
    return ds.map(write_segment, num_cpus=config.write_cpus)


def join_video(plan: VideoPlan, settings: VideoSettings) -> None:
    """Blend the frames neighbouring parts share, remux the parts and those frames into the target (with
    the source's audio), then drop the parts."""
    from fractions import Fraction

    audio = (str(storage.fetch(plan.source)) if storage.is_remote(plan.source) else plan.source) \
        if plan.has_audio else None
    folder = plan.parts[0].rsplit("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="satecco-join-") as tmp:
        def local(path: str) -> Path:
            return storage.fetch(path, cache=tmp) if storage.is_remote(path) else Path(path)

        pieces = []
        for index, part in enumerate(plan.parts):
            pieces.append(local(part))
            if index < len(plan.seams) and plan.seams[index]:
                frames = quantize(blend_seam(load_share(local(seam_path(part, "tail"))),
                                             load_share(local(seam_path(plan.parts[index + 1], "head")))))
                if len(frames) != plan.seams[index]:
                    raise SateccoError(f"{plan.source}: parts {index} and {index + 1} share {len(frames)} "
                                       f"frames, expected {plan.seams[index]}")
                seam = Path(tmp) / f"seam-{index:06d}{output_suffix(settings.codec)}"
                with VideoWriter(seam, frames.shape[2], frames.shape[1], Fraction(plan.frame_rate),
                                 codec=settings.codec, crf=settings.crf) as writer:
                    for frame in frames:
                        writer.write(frame)
                pieces.append(seam)
        if storage.is_remote(plan.target):
            local_target = Path(tmp) / plan.target.rsplit("/", 1)[-1]
            concat_segments(pieces, local_target, Fraction(plan.frame_rate), settings.codec, audio_from=audio)
            storage.upload(local_target, plan.target)
        else:
            concat_segments(pieces, Path(plan.target), Fraction(plan.frame_rate), settings.codec, audio_from=audio)
    if storage.is_remote(folder):
        storage.remove(folder)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def join_or_error(plan: VideoPlan, settings: VideoSettings) -> str | None:
    """:func:`join_video` as a CPU task: ``None`` when done, else the error naming the input."""
    try:
        join_video(plan, settings)
    except (SateccoError, OSError) as error:
        return str(error) if str(error).startswith(plan.source) else f"{plan.source}: {error}"
    return None


def run_ray(inputs: list[str], outdir: str | Path, spec: ModelSpec, settings: VideoSettings,
            config: PipelineConfig | None, address: str | None = None, progress: bool = True
            ) -> list[VideoResult]:
    """Upscale every input with the Ray engine; returns one result per input and writes the report.

    ``config`` ``None``: :func:`default_pipeline_config` for the cluster joined or started.
    """
    from tqdm import tqdm

    outdir = str(outdir)
    started = time.perf_counter()
    try:
        if not storage.is_remote(outdir):
            Path(outdir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        results = [VideoResult(s, None, "failed", 0, 0.0, f"{s}: cannot create {outdir}: {error}") for s in inputs]
        _report(results, outdir, {}, 0.0, progress, write=False)
        return results
    # Segments are cut with PipelineConfig's windows_per_segment, which the default layouts keep.
    results, plans, rows = plan_videos(inputs, outdir, settings, config or PipelineConfig(), address)
    for plan in [p for p in plans.values() if p.pending == 0]:  # every part done by an earlier run
        results.append(_result(plan, join_or_error(plan, settings)))
        del plans[plan.source]
    busy: dict[str, float] = defaultdict(float)
    if rows:
        init_ray(address)  # before Ray's import: it sets what Ray reads on import
        import ray

        config = config or default_pipeline_config(ray.cluster_resources())
        # Joins run as tasks beside the pipeline, near the parts, not through the driver.
        join_task, joining = ray.remote(num_cpus=config.write_cpus)(join_or_error), {}
        failed: dict[str, str] = {}
        # Each row finishes its own frames; a video's shared frames are finished by its join.
        total = sum(r["emit_stop"] - r["emit_start"] for r in rows) + sum(sum(p.seams) for p in plans.values())
        bar = tqdm(total=total, unit="frame",
                   disable=not progress, dynamic_ncols=True, file=sys.stderr)

        def collect_joins(wait: bool) -> None:
            done, _ = ray.wait(list(joining), num_returns=len(joining), timeout=None if wait else 0)
            for ref in done:
                plan = joining.pop(ref)
                try:
                    error = ray.get(ref)
                except ray.exceptions.RayError as crash:  # the task's worker died every retry
                    error = f"{plan.source}: joining its parts failed: {crash}"
                results.append(_result(plan, error))
                if error:
                    tqdm.write(f"satecco: error: {error}", file=sys.stderr)
                else:
                    bar.update(sum(plan.seams))
            bar.set_postfix(videos=f"{len(results)}/{len(inputs)}")

        try:
            try:
                for row in build_dataset(rows, spec, settings, config).iter_rows():
                    for key, value in row.items():
                        if key.startswith("busy_"):
                            busy[key[5:]] += float(value)
                    source = row["video"]
                    plan = plans[source]
                    plan.pending -= 1
                    if row["error"]:
                        failed.setdefault(source, row["error"])
                    else:
                        bar.update(int(row["frames_written"]))
                    if plan.pending == 0:
                        if source in failed:
                            results.append(_result(plan, failed[source]))
                            tqdm.write(f"satecco: error: {failed[source]}", file=sys.stderr)
                        else:
                            joining[join_task.remote(plan, settings)] = plan
                    collect_joins(wait=False)
            except ray.exceptions.RayError as stopped:
                # The pipeline itself failed (e.g. a stage actor that crashes whenever it starts): every
                # video still in it fails with the reason; finished parts stay for a rerun.
                for plan in [p for p in plans.values() if p.pending > 0]:
                    error = failed.get(plan.source) or f"{plan.source}: the Ray pipeline stopped: {_one_line(stopped)}"
                    results.append(_result(plan, error))
                    tqdm.write(f"satecco: error: {error}", file=sys.stderr)
            if joining:
                collect_joins(wait=True)
        finally:
            bar.close()
    order = {source: i for i, source in enumerate(inputs)}
    results.sort(key=lambda r: order.get(r.input, len(order)))
    _report(results, outdir, busy, time.perf_counter() - started, progress)
    return results


def _one_line(error: Exception) -> str:
    """A Ray error as one line: its type and the last line of its message (the root cause, after any
    remote traceback), without terminal colours."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"


def _result(plan: VideoPlan, error: str | None) -> VideoResult:
    seconds = time.perf_counter() - plan.started
    if error:
        return VideoResult(plan.source, None, "failed", 0, seconds, error)
    return VideoResult(plan.source, plan.target, "ok", plan.frames, seconds, reused_parts=plan.reused)


def _report(results: list[VideoResult], outdir: str, busy: dict[str, float], seconds: float, progress: bool,
            write: bool = True) -> None:
    """Write ``OUTDIR/satecco-report.jsonl`` (one line per input) and print throughput and busy time."""
    if write:
        text = "".join(json.dumps(asdict(r)) + "\n" for r in results)
        if storage.is_remote(outdir):
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / REPORT).write_text(text)
                storage.upload(Path(tmp) / REPORT, storage.join(outdir, REPORT))
        else:
            tmp = Path(outdir) / f".{REPORT}.partial"
            tmp.write_text(text)
            os.replace(tmp, Path(outdir) / REPORT)
    frames = sum(r.frames for r in results if r.status == "ok")
    if progress and seconds > 0:
        stages = ", ".join(f"{name} {value:.1f} s" for name, value in busy.items())
        print(f"satecco: {frames} frames in {seconds:.1f} s ({frames / seconds:.2f} frames/s); "
              f"busy time per stage: {stages or 'none'}", file=sys.stderr)
