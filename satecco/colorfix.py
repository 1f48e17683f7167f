"""Colour correction of the diffusion output against the input (``satecco upscale --color-fix``).

Diffusion SR can shift the colours of local regions (the paper's §3.4 cites this as the refiner's
reason to exist). StableSR, Upscale-A-Video and SeedVR2 offer two non-parametric fixes, which take the
colours of a reference, here the input upscaled by bicubic interpolation:

- ``adain``: each frame's per-channel mean and standard deviation are set to the reference's;
- ``wavelet``: the output's low frequencies (what a 5-level à trous wavelet decomposition leaves after
  its detail bands) are replaced by the reference's, keeping the output's detail bands.

Written here in a few tensor operations because neither torch nor diffusers ships them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from satecco.presets import COLOR_FIXES

#: detail bands of the wavelet decomposition (StableSR's choice): the low band spans about 2^5 pixels
WAVELET_LEVELS = 5


def _blur(frames: torch.Tensor, dilation: int) -> torch.Tensor:
    """The à trous B3-like 3×3 kernel ``[1, 2, 1]ᵀ[1, 2, 1] / 16`` with holes of ``dilation``, per channel."""
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=frames.dtype, device=frames.device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(frames.shape[1], 1, 3, 3)
    padded = F.pad(frames, (dilation,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, dilation=dilation, groups=frames.shape[1])


def low_frequencies(frames: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """What remains of ``frames`` ``(N, C, H, W)`` after removing ``levels`` wavelet detail bands."""
    for level in range(levels):
        frames = _blur(frames, 2**level)
    return frames


def color_fix(output: torch.Tensor, reference: torch.Tensor, kind: str) -> torch.Tensor:
    """``output`` with the colours of ``reference``, both ``(N, 3, H, W)`` (any common value range)."""
    if kind == "none":
        return output
    if kind == "adain":
        dims = (2, 3)
        out_mean, out_std = output.mean(dims, keepdim=True), output.std(dims, keepdim=True)
        ref_mean, ref_std = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
        return (output - out_mean) / out_std.clamp_min(1e-5) * ref_std + ref_mean
    if kind == "wavelet":
        return output - low_frequencies(output) + low_frequencies(reference)
    raise ValueError(f"unknown colour fix {kind!r}; choose one of {', '.join(COLOR_FIXES)}")


def color_fix_frames(output: np.ndarray, lr: np.ndarray, kind: str) -> np.ndarray:
    """``output`` ``(T, sH, sW, 3)`` float32 in [0, 255] with the colours of ``lr`` ``(T, h, w, 3)`` (uint8,
    or uint16 on the same scale ×257) upscaled by bicubic interpolation; clipped to [0, 255]."""
    if kind == "none":
        return output
    scale = 257.0 if lr.dtype == np.uint16 else 1.0
    reference = rearrange(torch.from_numpy(lr.astype(np.float32) / scale), "t h w c -> t c h w")
    reference = F.interpolate(reference, size=output.shape[1:3], mode="bicubic", align_corners=False)
    fixed = color_fix(rearrange(torch.from_numpy(output), "t h w c -> t c h w"), reference, kind)
    return rearrange(fixed.clamp(0, 255), "t c h w -> t h w c").numpy()
