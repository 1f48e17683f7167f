"""The Ray engine's plan: probe every input, skip finished videos and parts, cut the rest into segment
rows (the rows the Ray Data graph streams)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from satecco import storage
from satecco.cluster import init_ray
from satecco.inputs import Input, VideoResult, VideoSettings, assign_outputs
from satecco.pipelines.config import PipelineConfig
from satecco.preflight import Prepared, prepare_input
from satecco.segments import JoinPlan, part_name, parts_folder, plan_segments


@dataclass
class VideoPlan:
    """One input's work: how to join it, and how many of its parts are still to come."""

    join: JoinPlan
    frames: int
    pending: int
    reused: int
    discarded: int
    started: float
    notes: tuple[str, ...] = ()  # the preflight's: streams transcoded or dropped, deinterlacing, ...

    @property
    def source(self) -> str:
        return self.join.source

    def result(self, error: str | None) -> VideoResult:
        """The input's result once its parts are joined (``error`` ``None``) or have failed."""
        seconds = time.perf_counter() - self.started
        if error:
            return VideoResult(self.source, None, "failed", 0, seconds, error, discarded_parts=self.discarded)
        return VideoResult(self.source, self.join.target, "ok", self.frames, seconds, reused_parts=self.reused,
                           discarded_parts=self.discarded, notes=list(self.notes))


def probe_inputs(sources: list[str], settings: VideoSettings, decode_cpus: float, address: str | None
                 ) -> dict[str, Prepared | str]:
    """:func:`~satecco.preflight.prepare_input` of every input: local ones here (headers, the first frame
    and a packet count), remote ones as Ray tasks in parallel (each fetches its input into its machine's
    cache, where that machine's decode tasks find it), so that the driver never downloads the archive."""
    remote = [s for s in sources if storage.is_remote(s)]
    probed = {s: prepare_input(s, settings) for s in sources if not storage.is_remote(s)}
    if remote:
        init_ray(address)  # before Ray's import: it sets what Ray reads on import
        import ray

        task = ray.remote(num_cpus=decode_cpus)(prepare_input)
        probed.update(zip(remote, ray.get([task.remote(s, settings) for s in remote]), strict=True))
    return probed


def plan_videos(inputs: list[Input | str], outdir: str, settings: VideoSettings, config: PipelineConfig,
                fingerprint: str, address: str | None = None
                ) -> tuple[list[VideoResult], dict[str, VideoPlan], list[dict]]:
    """Assign and check outputs, probe inputs, skip finished videos (unless ``settings.overwrite``) and
    reuse finished parts of the same ``fingerprint`` (:mod:`satecco.fingerprint`; parts made with other
    settings are discarded); returns (final results so far, plans, segment rows).

    Segments are cut with ``config.windows_per_segment``; remote inputs are probed by tasks of
    ``config.decode_cpus``."""
    targets, results = assign_outputs(inputs, outdir, settings)
    todo = {}
    for source, target in targets.items():
        if not settings.overwrite and storage.exists(target):
            results.append(VideoResult(source, target, "skipped"))
        else:
            todo[source] = target
    plans, rows = {}, []
    for source, probed in probe_inputs(list(todo), settings, config.decode_cpus, address).items():
        if isinstance(probed, str):
            results.append(VideoResult(source, None, "failed", 0, 0.0, probed))
            continue
        folder = parts_folder(outdir, source, todo[source], fingerprint)
        plan, todo_rows = _plan_video(source, todo[source], probed, folder, settings, config.windows_per_segment)
        plans[source] = plan
        rows.extend(todo_rows)
    return results, plans, rows


def _plan_video(source: str, target: str, prepared: Prepared, folder: str, settings: VideoSettings,
                windows_per_segment: int) -> tuple[VideoPlan, list[dict]]:
    """One prepared input's plan (parts in ``folder``) and the rows of its segments that no earlier run
    finished with the same settings."""
    frames = prepared.frames
    segments = plan_segments(frames, settings.window, settings.window_overlap, windows_per_segment)
    parts = tuple(storage.join(folder, part_name(s.index, settings.codec)) for s in segments)
    join = JoinPlan(source, target, parts, tuple(s.read_stop - s.emit_stop for s in segments[:-1]),
                    prepared.frame_rate, prepared.encoding, settings.overwrite, prepared.excerpt)
    plan = VideoPlan(join, frames, pending=0, reused=0, discarded=_discard_other_settings(folder),
                     started=time.perf_counter(), notes=prepared.notes)
    rows = []
    for segment, part in zip(segments, parts, strict=True):
        if storage.exists(part):
            plan.reused += 1  # finished by an earlier run
            continue
        plan.pending += 1
        rows.append({"video": source, "segment": segment.index, "windows": list(segment.windows),
                     "length": segment.length, "emit_start": segment.emit_start, "emit_stop": segment.emit_stop,
                     "part": str(part), "frame_rate": str(prepared.frame_rate),
                     "encoding": prepared.encoding.to_json(), "deinterlace": prepared.deinterlace,
                     "offset": prepared.first, "error": ""})
    return plan, rows


def _discard_other_settings(folder: str) -> int:
    """Remove the parts an earlier run left for this input with another fingerprint (the folders beside
    ``folder``); returns how many parts they held."""
    discarded = 0
    for other in storage.children(folder.rsplit("/", 1)[0]):
        if other.rstrip("/").rsplit("/", 1)[-1] != folder.rsplit("/", 1)[-1]:
            names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in storage.children(other)]
            discarded += sum(name.startswith("part-") and not name.endswith(".npz") for name in names)
            storage.remove(other)
    return discarded
