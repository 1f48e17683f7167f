"""Training windows from REDS, Vimeo-90K or plain videos: the sources, crops, flips and degradations.

A :class:`Clip` is one sequence of HR frames (a video file or a PNG frame folder) with, where the data
set has them, matching LR frames. :func:`find_clips` recognises

- the REDS folder structure: ``ROOT/train_sharp/<clip>/<frame>.png``, LR (optional) in
  ``ROOT/train_sharp_bicubic/X4/<clip>/``;
- the Vimeo-90K septuplet folder structure: ``ROOT/sequences/<a>/<b>/im1.png … im7.png`` listed in
  ``ROOT/sep_trainlist.txt`` (one ``<a>/<b>`` per line);
- anything :func:`satecco.inputs.expand_inputs` takes: video files, folders of videos, frame
  folders, globs, manifests.

:func:`make_sample` turns one ``(clip, start)`` into an aligned random crop of ``L`` frames,
``hr`` ``(L, c, c, 3)`` and ``lr`` ``(L, c/4, c/4, 3)`` uint8, flipped and reversed at random.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satecco.errors import VideoError
from satecco.training.degrade import degrade
from satecco.video.read import count_frames, probe, read_frames

VIMEO_LIST = "sep_trainlist.txt"


@dataclass(frozen=True)
class Clip:
    """HR frames ``hr`` (video file or frame folder) of ``frames`` frames; ``lr`` their LR frame folder."""

    hr: str
    frames: int
    lr: str | None = None


def _frame_count(path: Path) -> int:
    return len([p for p in path.iterdir() if p.suffix.lower() == ".png"]) if path.is_dir() else count_frames(path)


def find_clips(path: str | Path) -> list[Clip]:
    """Every training clip under ``path`` (REDS, Vimeo-90K, or videos / frame folders)."""
    root = Path(path)
    if (root / "train_sharp").is_dir():
        lr_root = root / "train_sharp_bicubic" / "X4"
        clips = []
        for folder in sorted(p for p in (root / "train_sharp").iterdir() if p.is_dir()):
            lr = lr_root / folder.name
            clips.append(Clip(str(folder), _frame_count(folder), str(lr) if lr.is_dir() else None))
        if not clips:
            raise ValueError(f"{root / 'train_sharp'}: REDS folder structure without clip folders")
        return clips
    if (root / "sequences").is_dir():
        listing = root / VIMEO_LIST
        if not listing.is_file():
            raise ValueError(f"{root}: Vimeo-90K folder structure without its list file {VIMEO_LIST}")
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        missing = [n for n in names if not (root / "sequences" / n).is_dir()]
        if missing:
            raise ValueError(f"{listing}: {len(missing)} listed sequences are missing, e.g. {missing[0]!r}")
        return [Clip(str(root / "sequences" / n), _frame_count(root / "sequences" / n)) for n in names]
    from satecco.inputs import expand_inputs

    return [Clip(entry.source, _frame_count(Path(entry.source))) for entry in expand_inputs([str(path)])]


def window_starts(clips: list[Clip], frames: int, stride: int = 1) -> list[dict]:
    """``{"clip": i, "start": s}`` for every window of ``frames`` frames (clips shorter than that are skipped)."""
    return [{"clip": i, "start": s} for i, clip in enumerate(clips)
            for s in range(0, clip.frames - frames + 1, stride)]


def read_window(source: str, start: int, frames: int) -> np.ndarray:
    """``(L, H, W, 3)`` uint8 frames ``start … start + L - 1`` of a video file or frame folder."""
    window = list(read_frames(source, start, start + frames))
    if len(window) != frames:
        raise VideoError(source, f"expected {frames} frames from frame {start}, read {len(window)}")
    return np.stack(window)


class ClipCache:
    """Reads windows like :func:`read_window`, keeping whole decoded video files in memory.

    A video file is compressed in time: one window is read by seeking to the keyframe before it and
    decoding from there, about a second per 6-frame window of 720p H.264 with sparse keyframes, which
    starved training. A video of at most ``budget`` bytes decoded is decoded once and its windows are
    slices; the least recently used clips are dropped to stay within the budget. Frame folders and
    larger videos are read window by window.
    """

    def __init__(self, budget: int = 2 << 30):
        self.budget = budget
        self._clips: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, source: str, start: int, frames: int) -> np.ndarray:
        """``(L, H, W, 3)`` uint8 frames ``start … start + L - 1`` of ``source``."""
        clip = self._decoded(source)
        if clip is None:
            return read_window(source, start, frames)
        window = clip[start:start + frames]
        if len(window) != frames:
            raise VideoError(source, f"expected {frames} frames from frame {start}, read {len(window)}")
        return window

    def _decoded(self, source: str) -> np.ndarray | None:
        if source in self._clips:
            self._clips.move_to_end(source)
            return self._clips[source]
        if Path(source).is_dir():
            return None
        info = probe(source)
        if (info.num_frames or count_frames(source)) * info.width * info.height * 3 > self.budget:
            return None
        clip = np.stack(list(read_frames(source)))
        while self._clips and sum(c.nbytes for c in self._clips.values()) + clip.nbytes > self.budget:
            self._clips.popitem(last=False)
        self._clips[source] = clip
        return clip


def make_sample(clip: Clip, start: int, frames: int, crop: int, rng: np.random.Generator, scale: int = 4,
                degradation: str = "bi", augment: bool = True,
                read: Callable[[str, int, int], np.ndarray] = read_window) -> dict[str, np.ndarray]:
    """One training pair: ``hr`` ``(L, crop, crop, 3)`` and ``lr`` ``(L, crop/scale, crop/scale, 3)`` uint8.

    The crop position is random (aligned to ``scale`` so LR and HR match); with ``augment``, horizontal
    and vertical flips and temporal reversal, each with probability 1/2. Without dataset LR frames the
    LR crop is made from the HR crop by ``degradation`` (``bi`` or ``bd``). ``read(source, start, L)``
    reads the frames (:func:`read_window`, or a :class:`ClipCache`).
    """
    if crop % scale:
        raise ValueError(f"crop {crop} must be a multiple of the scale {scale}")
    hr = read(clip.hr, start, frames)
    height, width = hr.shape[1:3]
    if clip.lr is not None:
        lr = read(clip.lr, start, frames)
        if lr.shape[1] * scale != height or lr.shape[2] * scale != width:
            raise VideoError(clip.lr, f"LR frames {lr.shape[2]}x{lr.shape[1]} are not HR {width}x{height} / {scale}")
    if height < crop or width < crop:
        raise VideoError(clip.hr, f"frames are {width}x{height}, smaller than the {crop}px training crop")
    y = int(rng.integers(0, (height - crop) // scale + 1)) * scale
    x = int(rng.integers(0, (width - crop) // scale + 1)) * scale
    hr = hr[:, y:y + crop, x:x + crop]
    if clip.lr is not None:
        lr = lr[:, y // scale:(y + crop) // scale, x // scale:(x + crop) // scale]
    else:
        lr = degrade(np.ascontiguousarray(hr), scale, degradation)
    if augment:
        for axis in (2, 1, 0):  # horizontal flip, vertical flip, temporal reversal
            if rng.random() < 0.5:
                hr, lr = np.flip(hr, axis), np.flip(lr, axis)
    return {"hr": np.ascontiguousarray(hr), "lr": np.ascontiguousarray(lr)}


def validation_pair(source: str, frames: int, crop: int, scale: int = 4, degradation: str = "bi"
                    ) -> dict[str, np.ndarray]:
    """The held-out pair: the first ``frames`` frames of ``source``, centre crop of at most ``crop`` px."""
    hr = read_window(source, 0, frames)
    height, width = hr.shape[1:3]
    ch = min(crop, height) // scale * scale
    cw = min(crop, width) // scale * scale
    y, x = (height - ch) // 2 // scale * scale, (width - cw) // 2 // scale * scale
    hr = np.ascontiguousarray(hr[:, y:y + ch, x:x + cw])
    return {"hr": hr, "lr": degrade(hr, scale, degradation)}
