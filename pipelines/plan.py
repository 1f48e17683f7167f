"""The Ray engine's plan: probe every input, skip finished videos and parts, cut the rest into segment
rows (the rows the Ray Data graph streams)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

from satecco import storage
from satecco.cluster import init_ray
from satecco.errors import SateccoError, input_error
from satecco.inputs import Input, VideoResult, VideoSettings, assign_outputs
from satecco.pipelines.config import PipelineConfig
from satecco.segments import JoinPlan, part_name, parts_folder, plan_segments
from satecco.video.read import count_frames, probe


@dataclass
class VideoPlan:
    """One input's work: how to join it, and how many of its parts are still to come."""

    join: JoinPlan
    frames: int
    pending: int
    reused: int
    discarded: int
    started: float

    @property
    def source(self) -> str:
        return self.join.source

    def result(self, error: str | None) -> VideoResult:
        """The input's result once its parts are joined (``error`` ``None``) or have failed."""
        seconds = time.perf_counter() - self.started
        if error:
            return VideoResult(self.source, None, "failed", 0, seconds, error, discarded_parts=self.discarded)
        return VideoResult(self.source, self.join.target, "ok", self.frames, seconds, reused_parts=self.reused,
                           discarded_parts=self.discarded)


def probe_source(source: str) -> tuple[str, bool, int] | str:
    """CPU task: ``(frame rate, has audio, frame count)`` of one input, or the error naming it.

    A remote input is fetched into this machine's cache, where this machine's decode tasks find it.
    """
    local = None
    try:
        local = storage.local_copy(source)
        info = probe(local)
        return str(info.frame_rate), info.has_audio, count_frames(local, info)
    except (SateccoError, OSError) as error:
        return input_error(source, error, local=local)


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
    for source, probed in probe_inputs(list(todo), config.decode_cpus, address).items():
        if isinstance(probed, str):
            results.append(VideoResult(source, None, "failed", 0, 0.0, probed))
            continue
        folder = parts_folder(outdir, source, todo[source], fingerprint)
        plan, todo_rows = _plan_video(source, todo[source], probed, folder, settings, config.windows_per_segment)
        plans[source] = plan
        rows.extend(todo_rows)
    return results, plans, rows


def _plan_video(source: str, target: str, probed: tuple[str, bool, int], folder: str, settings: VideoSettings,
                windows_per_segment: int) -> tuple[VideoPlan, list[dict]]:
    """One probed input's plan (parts in ``folder``) and the rows of its segments that no earlier run
    finished with the same settings."""
    frame_rate, has_audio, frames = probed
    segments = plan_segments(frames, settings.window, settings.window_overlap, windows_per_segment)
    parts = tuple(storage.join(folder, part_name(s.index, settings.codec)) for s in segments)
    join = JoinPlan(source, target, parts, tuple(s.read_stop - s.emit_stop for s in segments[:-1]),
                    Fraction(frame_rate), has_audio, settings.codec, settings.crf, settings.overwrite)
    plan = VideoPlan(join, frames, pending=0, reused=0, discarded=_discard_other_settings(folder),
                     started=time.perf_counter())
    rows = []
    for segment, part in zip(segments, parts, strict=True):
        if storage.exists(part):
            plan.reused += 1  # finished by an earlier run
            continue
        plan.pending += 1
        rows.append({"video": source, "segment": segment.index, "windows": list(segment.windows),
                     "length": segment.length, "emit_start": segment.emit_start, "emit_stop": segment.emit_stop,
                     "part": str(part), "frame_rate": frame_rate, "codec": settings.codec, "crf": settings.crf,
                     "error": ""})
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
