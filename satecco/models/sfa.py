"""Spatial feature adaptation (SFA), paper §3.2, Eq. 1–2.

``M = Conv2D(g)``, ``S = Conv2D(g)``, ``f~ = S ⊙ (f − μ) / σ + M`` with ``μ, σ`` per frame and channel.
The convolutions predict offsets from the frame's own statistics (``S = σ + ΔS``, ``M = μ + ΔM``) and
start at zero, so a fresh SFA returns its input and the frozen network is unchanged at initialisation
(the ControlNet/StableSR convention DESIGN.md asks for).
"""

from __future__ import annotations

import torch
from torch import nn


class SpatialFeatureAdaptation(nn.Module):
    """Pixel-wise affine modulation of HR features ``f`` by LR guidance ``g``.

    Args:
        channels: width ``C`` of the modulated feature map.
        guidance_channels: width ``Cg`` of the guidance map.
        kernel_size: kernel of the two Conv2D layers of Eq. 1.
        eps: added to the variance before the square root.
    """

    def __init__(self, channels: int, guidance_channels: int, kernel_size: int = 3, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.to_scale = nn.Conv2d(guidance_channels, channels, kernel_size, padding=kernel_size // 2)
        self.to_shift = nn.Conv2d(guidance_channels, channels, kernel_size, padding=kernel_size // 2)
        for conv in (self.to_scale, self.to_shift):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``f``: ``(N, C, H, W)``, ``g``: ``(N, Cg, H, W)``, ``N = B * T`` frames -> ``(N, C, H, W)``."""
        stats = f.float()
        mean = stats.mean(dim=(2, 3), keepdim=True)
        std = (stats.var(dim=(2, 3), unbiased=False, keepdim=True) + self.eps).sqrt()
        scale = std + self.to_scale(g).float()
        shift = mean + self.to_shift(g).float()
        return (scale * (stats - mean) / std + shift).to(f.dtype)
