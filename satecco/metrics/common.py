"""What every metric shares: the :class:`Unavailable` result, input checks, frame and clip averaging."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed, with the reason; stands where a number would.

    Returned by the ``load_*`` functions when a metric's pretrained weights are absent, so that a
    results table says "unavailable" instead of showing a made-up value.
    """

    metric: str
    reason: str

    def __str__(self) -> str:
        return f"{self.metric} unavailable: {self.reason}"


def as_frame(image, name: str = "image") -> np.ndarray:
    """Check an ``(H, W, 3)`` RGB (or ``(H, W)`` grey) frame, uint8 or float in [0, 255]; float64 copy.

    Raises ``ValueError`` quoting the bad shape or dtype.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
        raise ValueError(f"{name}: expected an (H, W, 3) or (H, W) frame, got shape {image.shape}")
    if not (image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"{name}: expected uint8 or float pixels in [0, 255], got dtype {image.dtype}")
    return image.astype(np.float64)


def as_uint8_clip(frames, name: str = "frames") -> np.ndarray:
    """Check a ``(T, H, W, 3)`` uint8 clip (a single ``(H, W, 3)`` frame becomes ``T = 1``).

    Network metrics take the quantised 8-bit frames that are written to disk, nothing else.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name}: expected (T, H, W, 3) or (H, W, 3) uint8 RGB, got {frames.dtype} {frames.shape}")
    return frames


def check_same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    """``ValueError`` quoting both shapes unless they agree."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")


def crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    """Drop ``crop_border`` pixels at each edge of an ``(H, W, ...)`` frame (BasicSR's ``crop_border``)."""
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return image
    if min(image.shape[:2]) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a frame of shape {image.shape}")
    return image[crop_border:-crop_border, crop_border:-crop_border, ...]


def mean_over_frames(metric: Callable[..., float], pred, gt=None, **kwargs) -> float:
    """Apply a per-frame ``metric`` to each frame of ``(T, H, W, C)`` clips (or sequences of frames) and
    average; ``gt=None`` for no-reference metrics.

    This is BasicSR's video convention: a clip's score is the mean of its frames' scores, so one
    identical frame makes a clip's PSNR ``inf``, as it does there.
    """
    pred = list(pred)
    if not pred:
        raise ValueError("no frames to average over")
    if gt is None:
        return float(np.mean([metric(p, **kwargs) for p in pred]))
    gt = list(gt)
    if len(gt) != len(pred):
        raise ValueError(f"pred has {len(pred)} frames, gt has {len(gt)}")
    return float(np.mean([metric(p, g, **kwargs) for p, g in zip(pred, gt, strict=True)]))


def mean_over_clips(per_clip: Mapping[str, float] | Iterable[float]) -> float:
    """The dataset score: the plain mean of per-clip scores (each clip counts once, whatever its length).

    Raises ``ValueError`` for an empty input and ``TypeError`` for an :class:`Unavailable` among them.
    """
    values = list(per_clip.values()) if isinstance(per_clip, Mapping) else list(per_clip)
    if not values:
        raise ValueError("no clips to average over")
    for value in values:
        if isinstance(value, Unavailable):
            raise TypeError(f"cannot average an unavailable metric: {value}")
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def find_file(folder, names: Iterable[str]) -> Path | None:
    """The first of ``names`` (glob patterns) present in ``folder``, or ``folder`` itself if it is a file."""
    folder = Path(folder)
    if folder.is_file():
        return folder
    if not folder.is_dir():
        return None
    for pattern in names:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def load_state_dict(path: Path) -> dict:
    """Tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` state dict read with
    ``weights_only=True`` (third-party checkpoints such as torchvision's ship as pickled state dicts;
    that mode unpickles tensors and plain containers only, never arbitrary objects)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state
