"""The one place that converts between the I/O layout and the model layout.

I/O side: ``(T, H, W, C)`` uint8 RGB (uint16 for sources deeper than 8 bits). Model side:
``(B, T, C, H, W)`` float in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

# Moved to the torch-free satecco.windows; pyfunc models logged to MLflow before the move import it here.
from satecco.windows import quantize  # noqa: F401


def frames_to_model(frames: np.ndarray, device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 or uint16 -> ``(1, T, 3, H, W)`` float in [-1, 1]."""
    if frames.dtype not in (np.uint8, np.uint16) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) uint8 or uint16 frames, got {frames.dtype} {frames.shape}")
    if frames.dtype == np.uint16:  # torch has no uint16 arithmetic on every device: via float32
        video = rearrange(torch.from_numpy(frames.astype(np.float32)).to(device), "t h w c -> 1 t c h w")
        return (video / 32767.5 - 1.0).to(dtype)
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    video = rearrange(video, "t h w c -> 1 t c h w")
    return video.to(dtype) / 127.5 - 1.0


def model_to_frames(video: torch.Tensor) -> np.ndarray:
    """``(1, T, 3, H, W)`` float in [-1, 1] -> ``(T, H, W, 3)`` uint8 (rounded, clipped)."""
    if video.ndim != 5 or video.shape[0] != 1:
        raise ValueError(f"expected a (1, T, 3, H, W) video, got {tuple(video.shape)}")
    pixels = ((video[0].float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return rearrange(pixels, "t c h w -> t h w c").cpu().numpy()


def batch_to_model(frames: torch.Tensor, device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
    """A training batch ``(B, T, H, W, 3)`` uint8 -> ``(B, T, 3, H, W)`` float in [-1, 1]."""
    if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected (B, T, H, W, 3) uint8 frames, got {frames.dtype} {tuple(frames.shape)}")
    return rearrange(frames.to(device), "b t h w c -> b t c h w").to(dtype) / 127.5 - 1.0
