"""Video upscaler, paper §3.1 and Fig. 3a: conv stem, two cascaded TMSA blocks, pixel shuffle ×4.

A bicubic skip of the input is added (DESIGN.md allows it) and the last convolution starts at zero,
so an untrained upscaler is exactly bicubic interpolation and training learns the residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from satecco.models.attention import num_heads
from satecco.models.tmsa import TMSABlock


class VideoUpscaler(ModelMixin, ConfigMixin):
    """LR clip ``(B, T, 3, h, w)`` in [-1, 1] -> upscaled clip ``X_u`` ``(B, T, 3, s·h, s·w)``.

    Args:
        channels: feature width of the TMSA blocks.
        num_blocks: cascaded TMSA blocks (the paper uses two).
        depth: TMSA layers per block (alternately unshifted and shifted).
        head_dim: channels per attention head.
        window_size: ``(2, wh, ww)`` TMSA window (a frame pair × spatial window).
        mlp_ratio: feed-forward width multiple.
        scale: upscaling factor (4 in the paper).
    """

    @register_to_config
    def __init__(self, channels: int = 64, num_blocks: int = 2, depth: int = 2, head_dim: int = 32,
                 window_size: tuple[int, int, int] = (2, 8, 8), mlp_ratio: int = 2, scale: int = 4):
        super().__init__()
        heads = num_heads(channels, head_dim)
        self.stem = nn.Conv3d(3, channels, (1, 3, 3), padding=(0, 1, 1))
        self.blocks = nn.ModuleList(
            TMSABlock(channels, depth, heads, tuple(window_size), mlp_ratio) for _ in range(num_blocks)
        )
        self.conv_after = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        self.to_pixels = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.to_pixels.weight)
        nn.init.zeros_(self.to_pixels.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, h, w)`` -> ``(B, T, 3, s·h, s·w)``."""
        batch = lr.shape[0]
        scale = self.config.scale
        skip = F.interpolate(rearrange(lr, "b t c h w -> (b t) c h w"), scale_factor=scale, mode="bicubic",
                             align_corners=False)
        x = self.stem(rearrange(lr, "b t c h w -> b c t h w"))
        h = x
        for block in self.blocks:
            h = block(h)
        x = x + self.conv_after(h)
        residual = self.shuffle(self.to_pixels(rearrange(x, "b c t h w -> (b t) c h w")))
        return rearrange(skip + residual, "(b t) c h w -> b t c h w", b=batch)
