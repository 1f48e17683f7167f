"""Video refiner, paper §3.4 and Eq. 5: ``X_H = w·X_u + (1 − w)·X_d + ResBlock([X_u, X_d])``.

The residual block's output convolution starts at zero, so an untrained refiner is the plain blend.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn


class VideoRefiner(ModelMixin, ConfigMixin):
    """Blend the upscaled and decoded clips and add a learned frame-wise correction.

    Args:
        channels: width of the residual block.
        weight: the trade-off ``w`` of Eq. 5 (0.5 in the paper).
    """

    @register_to_config
    def __init__(self, channels: int = 64, weight: float = 0.5):
        super().__init__()
        self.conv_in = nn.Conv2d(6, channels, 3, padding=1)
        self.body = nn.Sequential(
            nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, upscaled: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """``upscaled`` ``X_u``, ``decoded`` ``X_d``: ``(B, T, 3, H, W)`` -> ``X_H`` ``(B, T, 3, H, W)``."""
        w = self.config.weight
        x = rearrange(torch.cat([upscaled, decoded], dim=2), "b t c h w -> (b t) c h w")
        h = self.conv_in(x)
        h = h + self.body(h)
        correction = rearrange(self.conv_out(h), "(b t) c h w -> b t c h w", b=upscaled.shape[0])
        return w * upscaled + (1 - w) * decoded + correction
