"""Segments: the Ray engine's unit of work, from plan to joined video.

A segment is a run of consecutive windows of one video. One worker (or a chain of stage actors, one
pipeline part each: :data:`PARTS`) runs all its windows and writes one *part* file; the worker that runs
``decode`` also cross-fades the windows. Segments share no window, so no window is computed twice: a
segment finishes the frames only its windows cover and keeps, beside its part, its *share* of the blend
of the frames it shares with a neighbour (weighted sums and weights). The join blends those shared
frames (:func:`blend_seam`) and remuxes parts and blended frames into the output, so the frames equal
those the in-process engine computes for the whole video.

    plan_segments -> run_segment -> part file + shares (part_name, seam_path, save_share)
      -> join_parts (load_share, blend_seam, concat) -> output

Nothing here imports torch: the driver and the join tasks use this module too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satecco import storage
from satecco.errors import SateccoError
from satecco.video.concat import concat_segments
from satecco.video.formats import output_suffix
from satecco.video.picture import Encoding
from satecco.video.write import VideoWriter
from satecco.windows import TemporalBlender, plan_windows, quantize

if TYPE_CHECKING:
    from satecco.pipeline import SATeCoPipeline

#: The pipeline's parts in order (see :mod:`satecco.pipeline`): what one stage actor may run.
PARTS = ("encode", "denoise", "decode")
#: Where a part waits for its join, under OUTDIR.
PARTS_FOLDER = ".satecco-parts"


@dataclass(frozen=True)
class Segment:
    """A run of consecutive windows that one worker upscales and writes as one part file.

    Segments share no window: each computes ``windows`` (their starts, each ``length`` frames) once.
    Frames ``emit_start <= index < emit_stop`` blend windows of this segment only and come out final.
    The frames this segment shares with a neighbour (its head ``read_start..emit_start`` and its tail
    ``emit_stop..read_stop``) also blend a window of that neighbour: the segment hands back its part of
    their blend (weighted sums and weights), and the join adds the two parts (:func:`blend_seam`), so
    the frames equal those of a single pass over the whole video.
    """

    index: int
    windows: tuple[int, ...]
    length: int
    emit_start: int
    emit_stop: int

    @property
    def read_start(self) -> int:
        return self.windows[0]

    @property
    def read_stop(self) -> int:
        return self.windows[-1] + self.length


def plan_segments(num_frames: int, length: int, overlap: int, windows_per_segment: int) -> list[Segment]:
    """Cut a video's windows into segments of ``windows_per_segment`` windows.

    A group of windows that would finish no frame of its own (its neighbours' windows cover all its
    frames, as the end-aligned last window can do) joins the group before it, so that every frame is
    shared by at most two segments.
    """
    if windows_per_segment < 1:
        raise ValueError(f"windows_per_segment must be at least 1, got {windows_per_segment}")
    starts = plan_windows(num_frames, length, overlap)
    length = min(length, num_frames)
    groups: list[list[int]] = []
    for first in range(0, len(starts), windows_per_segment):
        group = starts[first:first + windows_per_segment]
        # The previous group finishes no frame of its own if the group before it reaches this one.
        if len(groups) >= 2 and groups[-2][-1] + length >= group[0]:
            middle = groups.pop()
            groups[-1] = groups[-1] + middle
        groups.append(group)
    segments = []
    for index, group in enumerate(groups):
        emit_start = 0 if index == 0 else groups[index - 1][-1] + length
        emit_stop = num_frames if index == len(groups) - 1 else groups[index + 1][0]
        segments.append(Segment(index, tuple(group), length, emit_start, emit_stop))
    return segments


def blend_seam(tail: tuple[np.ndarray, np.ndarray], head: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The frames two neighbouring segments share, from their parts of the blend.

    ``tail``: the earlier segment's ``(sums (F, H, W, C) float32, weights (F,))``; ``head``: the later
    one's, for the same frames. Returns ``(F, H, W, C)`` float32, as :class:`TemporalBlender` would have
    blended them in one pass (the earlier windows' sum first, as there).
    """
    (tail_sums, tail_weights), (head_sums, head_weights) = tail, head
    if tail_sums.shape != head_sums.shape:
        raise ValueError(f"seam parts disagree: {tail_sums.shape} and {head_sums.shape}")
    return np.stack([(a + b) / (float(wa) + float(wb))
                     for a, b, wa, wb in zip(tail_sums, head_sums, tail_weights, head_weights, strict=True)])


def run_segment(pipeline: SATeCoPipeline, windows: np.ndarray, starts: np.ndarray, emit: tuple[int, int],
                seed: int, overlap: int, parts: tuple[str, ...] = PARTS,
                carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run ``parts`` on a segment's windows.

    Args:
        windows: LR windows ``(W, T, h, w, 3)`` uint8 (uint16 for deep sources: the frames come back so).
        starts: first frame index of each window ``(W,)``.
        emit: ``(emit_start, emit_stop)``, the frames this segment owns.
        overlap: window overlap (the cross-fade length).
        carried: outputs of earlier parts, ``(W, P, T, c, h', w')`` float32 per key.

    Returns:
        ``{"latents" | "denoised": (W, P, T, c, h', w')}`` when ``decode`` is not among ``parts``, else
        ``{"frames": (emit_stop - emit_start, sh, sw, 3) uint8}`` and the shared frames' share of the
        blend: ``head`` / ``tail`` ``(F, sh, sw, 3)`` float32 weighted sums with ``head_weights`` /
        ``tail_weights`` ``(F,)``, for frames ``starts[0]..emit_start`` and ``emit_stop..starts[-1] + T``.
    """
    outputs = (out for first in range(0, len(windows), pipeline.batch)  # up to `batch` windows at once
               for out in pipeline.run_windows(windows[first:first + pipeline.batch], starts[first:first + pipeline.batch],
                                               seed, parts, {k: v[first:first + pipeline.batch]
                                                             for k, v in (carried or {}).items()}))
    if "decode" not in parts:
        outputs = list(outputs)
        key = next(iter(outputs[0]))
        return {key: np.stack([out[key] for out in outputs])}
    blender, kept, shared = TemporalBlender(overlap), [], []
    emit_start, emit_stop = emit

    def take(done: list[tuple[int, np.ndarray, float]]) -> None:
        for index, total, weight in done:  # owned frames leave float as soon as they are final
            if emit_start <= index < emit_stop:
                kept.append(quantize(total / weight, windows.dtype))
            else:
                shared.append((index, total, weight))

    for start, out in zip(starts, outputs, strict=True):
        take(blender.add_sums(int(start), out["frames"]))
    take(blender.finish_sums())
    if len(kept) != emit_stop - emit_start:
        raise AssertionError(f"segment kept {len(kept)} frames, expected {emit_stop - emit_start}")
    result = {"frames": np.stack(kept)}
    for side, chosen in (("head", [s for s in shared if s[0] < emit_start]),
                         ("tail", [s for s in shared if s[0] >= emit_stop])):
        result[side] = (np.stack([total for _, total, _ in chosen]) if chosen
                        else np.zeros((0, *kept[0].shape), np.float32))
        result[f"{side}_weights"] = np.array([weight for _, _, weight in chosen], dtype=np.float64)
    return result


def part_name(index: int, codec: str) -> str:
    """The file name of segment ``index``'s part."""
    return f"part-{index:06d}{output_suffix(codec)}"


def parts_folder(outdir: str, source: str, target: str, fingerprint: str) -> str:
    """Where the part files of ``source``'s output ``target`` wait for the join:
    ``OUTDIR/.satecco-parts/<output name>-<input key>/<fingerprint>/``. Keyed by the input, two inputs of
    one stem never share parts; keyed by the fingerprint (:mod:`satecco.fingerprint`), a rerun with other
    settings never reuses a part made with these."""
    key = hashlib.sha1(storage.canonical(source).encode()).hexdigest()[:10]
    name = target.rstrip("/").rsplit("/", 1)[-1]
    return storage.join(storage.join(storage.join(outdir, PARTS_FOLDER), f"{name}-{key}"), fingerprint)


def seam_path(part: str, side: str) -> str:
    """Where the segment of ``part`` keeps its share (``head`` or ``tail``) of the frames it shares."""
    folder, slash, name = str(part).rpartition("/")
    return f"{folder}{slash}{name.split('.')[0]}.{side}.npz"


def save_share(path: str, sums: np.ndarray, weights: np.ndarray) -> None:
    """Write ``sums (F, H, W, 3)`` float32 and ``weights (F,)`` to ``path`` (local or URI), atomically."""
    with storage.atomic_output(path) as local, open(local, "wb") as file:
        np.savez(file, sums=sums, weights=weights)


def load_share(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`save_share` wrote: ``(sums, weights)``."""
    with np.load(path) as data:
        return data["sums"], data["weights"]


def write_frames(path, frames: np.ndarray, frame_rate: Fraction, encoding: Encoding) -> None:
    """Encode ``frames (F, H, W, 3)`` (uint8, or uint16 for a deep ``encoding``) to the video file (or
    PNG folder) ``path``, atomically, scaled to ``encoding.size`` where it has one."""
    with VideoWriter.for_encoding(path, frame_rate, encoding, (frames.shape[2], frames.shape[1])) as writer:
        for frame in frames:
            writer.write(frame)


@dataclass(frozen=True)
class JoinPlan:
    """What the join of one video needs: its parts in order and how many frames each pair shares."""

    source: str
    target: str
    parts: tuple[str, ...]
    seams: tuple[int, ...]  # frames shared by part i and part i + 1
    frame_rate: Fraction
    encoding: Encoding
    overwrite: bool = False
    excerpt: tuple[int, int] | None = None  # the source frames the output holds (None: all)


def join_parts(plan: JoinPlan, tmp: Path) -> None:
    """Blend the frames neighbouring parts share, remux the parts and those frames into ``plan.target``
    (with what the source carries besides pictures: :mod:`satecco.video.streams`), then remove the
    parts. ``tmp``: a scratch folder."""
    def local(path: str) -> Path:
        return Path(storage.local_copy(path, cache=tmp))

    pieces = []
    for index, part in enumerate(plan.parts):
        pieces.append(local(part))
        if index < len(plan.seams) and plan.seams[index]:
            frames = quantize(blend_seam(load_share(local(seam_path(part, "tail"))),
                                         load_share(local(seam_path(plan.parts[index + 1], "head")))),
                              plan.encoding.dtype)
            if len(frames) != plan.seams[index]:
                raise SateccoError(f"{plan.source}: parts {index} and {index + 1} share {len(frames)} "
                                   f"frames, expected {plan.seams[index]}")
            pieces.append(tmp / f"seam-{index:06d}{output_suffix(plan.encoding.codec)}")
            write_frames(pieces[-1], frames, plan.frame_rate, plan.encoding)
    source = storage.local_copy(plan.source)
    with storage.atomic_output(plan.target, replace_folder=plan.overwrite) as output:
        concat_segments(pieces, output, plan.frame_rate, plan.encoding.codec, source=source, excerpt=plan.excerpt)
    folder = plan.parts[0].rsplit("/", 1)[0]
    storage.remove(folder)
    for parent in (folder.rsplit("/", 1)[0], folder.rsplit("/", 2)[0]):  # no empty .satecco-parts/ left
        storage.remove_if_empty(parent)
