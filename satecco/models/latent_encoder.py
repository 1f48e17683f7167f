"""Latent encoder ``E_z`` (paper §3.2): guidance ``G = E_z(Z)`` for every UNet decoder block.

A small convolutional pyramid over the latent ``Z``: one level per resolution that a UNet decoder
block produces (stride-2 convolutions, the same rounding as the UNet's own downsamplers), and one
head per decoder block that maps its level to the block's width.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class LatentEncoder(ModelMixin, ConfigMixin):
    """``Z`` ``(N, c_z, h, w)`` -> one guidance map per decoder block, ``(N, C_i, h / 2^l_i, w / 2^l_i)``.

    Args:
        latent_channels: channels ``c_z`` of the VAE latent.
        level_channels: width of each pyramid level; level ``l`` is at ``1 / 2^l`` of the latent size.
        block_channels: width ``C_i`` of each decoder block's output, in decoder order.
        block_levels: pyramid level ``l_i`` of each decoder block's output.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, level_channels: tuple[int, ...] = (320, 640, 1280),
                 block_channels: tuple[int, ...] = (1280, 1280, 640, 320),
                 block_levels: tuple[int, ...] = (2, 1, 0, 0)):
        super().__init__()
        if len(block_channels) != len(block_levels):
            raise ValueError(f"block_channels {block_channels} and block_levels {block_levels} differ in length")
        if max(block_levels) >= len(level_channels):
            raise ValueError(f"block_levels {block_levels} need more than {len(level_channels)} levels")
        self.levels = nn.ModuleList()
        cin = latent_channels
        for index, width in enumerate(level_channels):
            self.levels.append(nn.Sequential(
                nn.Conv2d(cin, width, 3, stride=1 if index == 0 else 2, padding=1), nn.SiLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            ))
            cin = width
        self.heads = nn.ModuleList(
            nn.Conv2d(level_channels[level], width, 3, padding=1)
            for width, level in zip(block_channels, block_levels, strict=True)
        )

    def forward(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """``(N, c_z, h, w)`` -> list of ``(N, C_i, h_i, w_i)``, one per decoder block."""
        features = []
        h = latents
        for level in self.levels:
            h = level(h)
            features.append(h)
        return [head(features[level]) for head, level in zip(self.heads, self.config.block_levels, strict=True)]
