"""The Ray engine of ``satecco upscale``: a streaming Ray Data graph over segments of many videos.

    plan (pipelines.plan) -> segments -> decode (CPU tasks, PyAV) -> stage actor pools (upscale+encode |
    denoise | decode+refine, fused as configs/pipeline/*.yaml say) -> write part files (CPU tasks)
    -> join tasks (satecco.segments.join_parts)

The driver plans the segments, streams the results, and starts a task that joins a video's parts as
soon as its last part lands: no shuffle, no ``groupby``. Part files wait under
``OUTDIR/.satecco-parts/`` until their video is joined, so a rerun after a crash skips finished videos
and finished parts alike. Every run writes ``OUTDIR/satecco-report.jsonl``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from satecco.cluster import init_ray, without_false_alarms
from satecco.fingerprint import fingerprint
from satecco.inputs import Input, RunReport, VideoResult, VideoSettings, outdir_failures
from satecco.pipelines.config import PipelineConfig, default_pipeline_config
from satecco.pipelines.plan import VideoPlan, plan_videos
from satecco.pipelines.stages import StageActor, decode_segment, join_video, write_segment
from satecco.presets import ModelSpec


def upscale_dataset(rows: list[dict], spec: ModelSpec, settings: VideoSettings, config: PipelineConfig):
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
            StageActor, fn_constructor_kwargs=dict(spec=spec, parts=group.parts, name=group.name,
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


class RunProgress:
    """The driver's view of a run: the rows streaming back, the joins in flight, the results so far."""

    def __init__(self, plans: dict[str, VideoPlan], results: list[VideoResult], report: RunReport, inputs: int,
                 total_frames: int, join_task, progress: bool):
        from tqdm import tqdm

        self.plans, self.results, self.report, self.inputs, self.join_task = plans, results, report, inputs, join_task
        self.joining: dict = {}  # ObjectRef -> VideoPlan
        self.failed: dict[str, str] = {}
        self.busy: dict[str, float] = defaultdict(float)
        self.bar = tqdm(total=total_frames, unit="frame", disable=not progress, dynamic_ncols=True,
                        file=sys.stderr)

    def finish(self, plan: VideoPlan, error: str | None) -> None:
        self.results.append(plan.result(error))
        self.report.add(self.results[-1])
        if error:
            self.bar.write(f"satecco: error: {error}", file=sys.stderr)

    def row_done(self, row: dict) -> None:
        """One segment came back: count it, and join its video once its last part is written."""
        for key, value in row.items():
            if key.startswith("busy_"):
                self.busy[key[5:]] += float(value)
        plan = self.plans[row["video"]]
        plan.pending -= 1
        if row["error"]:
            self.failed.setdefault(plan.source, row["error"])
        else:
            self.bar.update(int(row["frames_written"]))
        if plan.pending == 0:
            if plan.source in self.failed:
                self.finish(plan, self.failed[plan.source])
            else:
                self.joining[self.join_task.remote(plan.join)] = plan
        self.collect_joins(wait=False)

    def collect_joins(self, wait: bool) -> None:
        """Record the joins that have finished (``wait``: all of them, once they finish)."""
        import ray

        joins = list(self.joining)
        done = ray.wait(joins, num_returns=len(joins), timeout=None if wait else 0)[0] if joins else []
        for ref in done:
            plan = self.joining.pop(ref)
            try:
                error = ray.get(ref)
            except ray.exceptions.RayError as crash:  # the task's worker died every retry
                error = f"{plan.source}: joining its parts failed: {crash}"
            self.finish(plan, error)
            if not error:
                self.bar.update(sum(plan.join.seams))
        self.bar.set_postfix(videos=f"{len(self.results)}/{self.inputs}")

    def pipeline_stopped(self, stopped: Exception) -> None:
        """The pipeline itself failed (e.g. a stage actor that crashes whenever it starts): every video
        still in it fails with the reason; finished parts stay for a rerun."""
        for plan in [p for p in self.plans.values() if p.pending > 0]:
            self.finish(plan, self.failed.get(plan.source)
                        or f"{plan.source}: the Ray pipeline stopped: {_one_line(stopped)}")


def upscale_on_ray(inputs: list[Input | str], outdir: str | Path, spec: ModelSpec, settings: VideoSettings,
                   config: PipelineConfig | None, address: str | None = None, progress: bool = True
                   ) -> list[VideoResult]:
    """Upscale every input with the Ray engine; returns one result per input and writes the report.

    ``config`` ``None``: :func:`default_pipeline_config` for the cluster joined or started.
    """
    outdir, started = str(outdir), time.perf_counter()
    sources = list(dict.fromkeys(Input.of(entry).source for entry in inputs))
    unwritable = outdir_failures(sources, outdir)
    for result in unwritable:
        print(f"satecco: error: {result.error}", file=sys.stderr)
    if unwritable:
        return unwritable
    # Segments are cut with PipelineConfig's windows_per_segment, which the default configs keep.
    results, plans, rows = plan_videos(inputs, outdir, settings, config or PipelineConfig(),
                                       fingerprint(spec, settings), address)
    for plan in plans.values():
        if plan.discarded:
            print(f"satecco: {plan.source}: {plan.discarded} parts of an earlier run with other settings "
                  f"discarded", file=sys.stderr)
        for note in plan.notes:
            print(f"satecco: {plan.source}: {note}", file=sys.stderr)
    for plan in [p for p in plans.values() if p.pending == 0]:  # every part done by an earlier run
        results.append(plan.result(join_video(plan.join)))
        del plans[plan.source]
    report = RunReport(outdir)
    for result in results:  # refused, skipped, unreadable and already finished: before any model work
        report.add(result)
        if result.status == "failed":
            print(f"satecco: error: {result.error}", file=sys.stderr)
    busy = {}
    if rows:
        busy = _run_pipeline(rows, plans, results, report, len(sources), spec, settings, config, address, progress)
    order = {source: i for i, source in enumerate(sources)}
    results.sort(key=lambda r: order.get(r.input, len(order)))
    report.close(results, busy)
    _print_throughput(results, busy, time.perf_counter() - started, progress)
    return results


def _run_pipeline(rows: list[dict], plans: dict[str, VideoPlan], results: list[VideoResult], report: RunReport,
                  inputs: int,
                  spec: ModelSpec, settings: VideoSettings, config: PipelineConfig | None, address: str | None,
                  progress: bool) -> dict[str, float]:
    """Stream ``rows`` through the graph, joining each video as its last part lands; returns busy time."""
    init_ray(address)  # before Ray's import: it sets what Ray reads on import
    import ray

    config = config or default_pipeline_config(ray.cluster_resources())
    # Joins run as tasks beside the pipeline, near the parts, not through the driver.
    join_task = ray.remote(num_cpus=config.write_cpus)(join_video)
    # Each row finishes its own frames; a video's shared frames are finished by its join.
    total = sum(r["emit_stop"] - r["emit_start"] for r in rows) + sum(sum(p.join.seams) for p in plans.values())
    run = RunProgress(plans, results, report, inputs, total, join_task, progress)
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)  # satecco -v: Ray's console as it is
    with run.bar, contextlib.nullcontext() if verbose else without_false_alarms():
        try:
            for row in upscale_dataset(rows, spec, settings, config).iter_rows():
                run.row_done(row)
        except ray.exceptions.RayError as stopped:
            run.pipeline_stopped(stopped)
        run.collect_joins(wait=True)
    return run.busy


def _one_line(error: Exception) -> str:
    """A Ray error as one line: its type and the last line of its message (the root cause, after any
    remote traceback), without terminal colours."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"


def _print_throughput(results: list[VideoResult], busy: dict[str, float], seconds: float, progress: bool) -> None:
    frames = sum(r.frames for r in results if r.status == "ok")
    if progress and seconds > 0:
        stages = ", ".join(f"{name} {value:.1f} s" for name, value in busy.items())
        print(f"satecco: {frames} frames in {seconds:.1f} s ({frames / seconds:.2f} frames/s); "
              f"busy time per stage: {stages or 'none'}", file=sys.stderr)
