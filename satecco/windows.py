"""Temporal windows and spatial tiles, and the blending that hides their borders.

Long videos are processed in windows of ``L`` frames that overlap by a few frames; large frames in
overlapping tiles. Overlaps are cross-faded with linear ramps, and only the frames and tiles in
flight are held in memory, so memory does not grow with video length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np


def batched(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of up to ``size`` (``itertools.batched`` is Python 3.12's; we support 3.11)."""
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


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


def quantize(frames: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Blended float pixels in [0, 255] (any shape) -> ``dtype``, rounded half to even and clipped:
    uint8, or uint16 for deep sources (``value · 257``, all 16 bits, as FFmpeg's ``rgb48``).

    Numpy only, so that the processes that only write and join videos never import torch.
    """
    if np.dtype(dtype) == np.uint16:
        return np.clip(np.rint(frames * 257.0), 0, 65535).astype(np.uint16)
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
