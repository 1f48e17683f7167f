"""Temporal windows and spatial tiles, and the blending that hides their borders.

Long videos are processed in windows of ``L`` frames that overlap by a few frames; large frames in
overlapping tiles. Overlaps are cross-faded with linear ramps, and only the frames and tiles in
flight are held in memory, so memory does not grow with video length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


def iter_windows(frames: Iterable[np.ndarray], length: int, overlap: int) -> Iterator[tuple[int, np.ndarray]]:
    """Group a frame stream into windows ``(start, (T, H, W, C))``.

    Windows start every ``length - overlap`` frames; the last one is aligned to the end of the video
    (so it may overlap its predecessor by more), and a video shorter than ``length`` is one window.
    """
    if length < 1 or not 0 <= overlap < length:
        raise ValueError(f"window length {length} and overlap {overlap}: need 0 <= overlap < length")
    stride = length - overlap
    buffer: deque[np.ndarray] = deque(maxlen=length)
    next_start, seen, last_emitted_end = 0, 0, 0
    for frame in frames:
        buffer.append(frame)
        seen += 1
        if seen - next_start == length:
            yield next_start, np.stack(buffer)
            last_emitted_end = seen
            next_start += stride
    if seen > last_emitted_end:
        yield max(seen - length, 0), np.stack(buffer)


def plan_windows(num_frames: int, length: int, overlap: int) -> list[int]:
    """Window starts for a video of ``num_frames``: exactly those :func:`iter_windows` yields."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if length < 1 or not 0 <= overlap < length:
        raise ValueError(f"window length {length} and overlap {overlap}: need 0 <= overlap < length")
    if num_frames <= length:
        return [0]
    starts = list(range(0, num_frames - length + 1, length - overlap))
    return starts + [num_frames - length] if starts[-1] + length < num_frames else starts


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


def ramp(size: int, fade: int) -> np.ndarray:
    """Weights ``(size,)`` rising linearly over ``fade`` samples at both ends, 1 in between (never 0)."""
    position = np.arange(size, dtype=np.float32)
    if fade <= 0:
        return np.ones(size, dtype=np.float32)
    return np.minimum(1.0, np.minimum(position + 1, size - position) / (fade + 1)).astype(np.float32)


class TemporalBlender:
    """Cross-fade overlapping window outputs and hand back finished frames in order.

    Windows must arrive in increasing ``start`` order (as :func:`iter_windows` yields them).
    """

    def __init__(self, overlap: int):
        self.overlap = overlap
        self._sum: dict[int, np.ndarray] = {}
        self._weight: dict[int, float] = {}
        self._next = 0

    def add(self, start: int, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add ``(T, H, W, C)`` float frames for ``start..start+T-1``; returns ``(index, frame)`` now final."""
        return [(index, total / weight) for index, total, weight in self.add_sums(start, frames)]

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """All frames still pending, as ``(index, frame)``."""
        return [(index, total / weight) for index, total, weight in self.finish_sums()]

    def add_sums(self, start: int, frames: np.ndarray) -> list[tuple[int, np.ndarray, float]]:
        """:meth:`add`, handing back each finished frame as ``(index, weighted sum, weight)``."""
        done = self._flush(upto=start)
        weights = ramp(len(frames), self.overlap)
        for offset, (frame, weight) in enumerate(zip(frames, weights, strict=True)):
            index = start + offset
            if index < self._next:
                raise ValueError(f"window at {start} reaches frame {index}, which was already finished")
            self._sum[index] = self._sum.get(index, 0.0) + weight * frame.astype(np.float32)
            self._weight[index] = self._weight.get(index, 0.0) + float(weight)
        return done

    def finish_sums(self) -> list[tuple[int, np.ndarray, float]]:
        """:meth:`finish`, as ``(index, weighted sum, weight)``."""
        return self._flush(upto=None)

    def _flush(self, upto: int | None) -> list[tuple[int, np.ndarray, float]]:
        done = []
        for index in sorted(self._sum):
            if upto is not None and index >= upto:
                break
            done.append((index, self._sum.pop(index), self._weight.pop(index)))
            self._next = index + 1
        return done


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


def quantize(frames: np.ndarray) -> np.ndarray:
    """Blended float pixels in [0, 255] (any shape) -> uint8, rounded half to even and clipped.

    Numpy only, so that the processes that only write and join videos never import torch.
    """
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` samples covering ``size`` with at least ``overlap`` shared.

    The last tile is aligned to the end; a ``size`` that fits in one tile gives ``[0]``.
    """
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]
