"""Low-resolution inputs made from high-resolution frames: the BI and BD degradations of the VSR papers.

- ``bi``: MATLAB's ``imresize(hr, 1/4)`` (bicubic, antialiased), the REDS / Vimeo-90K "BIx4" protocol;
- ``bd``: a 13x13 Gaussian blur with sigma 1.6 (replicate borders), then every 4th pixel, the "BDx4"
  protocol of DUF / BasicVSR (MATLAB ``imfilter(fspecial('gaussian', 13, 1.6), 'replicate')``).

Frames are ``(T, H, W, 3)`` uint8 with ``H`` and ``W`` multiples of ``scale``.
"""

from __future__ import annotations

import numpy as np
from einops import rearrange

from satecco.metrics.imresize import imresize
from satecco.training.config import DEGRADATIONS


def gaussian_kernel(size: int = 13, sigma: float = 1.6):
    """``(size, size)`` normalised Gaussian (float64 tensor), as MATLAB's ``fspecial('gaussian', size, sigma)``."""
    import torch

    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def degrade(hr: np.ndarray, scale: int = 4, kind: str = "bi") -> np.ndarray:
    """``(T, H, W, 3)`` uint8 HR frames -> ``(T, H/scale, W/scale, 3)`` uint8 LR frames."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {DEGRADATIONS}")
    if hr.dtype != np.uint8 or hr.ndim != 4 or hr.shape[1] % scale or hr.shape[2] % scale:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames with H and W multiples of {scale}, "
                         f"got {hr.dtype} {hr.shape}")
    if kind == "bi":
        return np.stack([imresize(frame, scale=1 / scale) for frame in hr])
    # torch only here: the data tasks of a BI run (the default) then never import it.
    import torch
    import torch.nn.functional as F

    kernel = gaussian_kernel()
    pad = kernel.shape[0] // 2
    video = rearrange(torch.from_numpy(hr).double(), "t h w c -> (t c) 1 h w")
    blurred = F.conv2d(F.pad(video, (pad,) * 4, mode="replicate"), kernel[None, None])
    lr = blurred[:, :, ::scale, ::scale]
    lr = rearrange(lr, "(t c) 1 h w -> t h w c", c=hr.shape[-1])
    return lr.round().clamp(0, 255).to(torch.uint8).numpy()
