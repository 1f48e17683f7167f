"""Temporal feature alignment (TFA), paper §3.3, Eq. 3–4.

Each frame is cut into non-overlapping ``8 × 8`` windows; the same window across the ``L`` frames forms
a tubelet of ``8 · 8 · L`` tokens. Self-attention runs inside each HR tubelet (Q, K, V from Conv3D), then
cross-attention from the HR tubelet (Q' from Conv3D) to the LR guidance tubelet (K', V' from Conv3D).
Both attentions are residual with zero-initialised output projections, so a fresh TFA is the identity.
Frames are padded to a multiple of the window; edge windows attend over their real tokens only, in
groups that need no mask (:func:`~satecco.models.attention.window_groups`), so every attention call
can use SDPA's fast kernels.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from satecco.models.attention import (
    crop_volume,
    from_windows,
    grouped_attention,
    num_heads,
    pad_volume,
    to_windows,
    window_groups,
)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each token of a ``(B, C, T, H, W)`` volume.

    Per-token statistics keep TFA local to its tubelets (a GroupNorm's whole-frame statistics would
    couple every window and make tiled output depend on the tiling).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(super().forward(rearrange(x, "b c t h w -> b t h w c")), "b t h w c -> b c t h w")


class TemporalFeatureAlignment(nn.Module):
    """Tubelet self-attention plus cross-attention to the LR tubelet.

    Args:
        channels: width ``C`` of the HR feature map.
        guidance_channels: width ``Cg`` of the LR guidance map.
        window_size: spatial window ``h = w`` of a tubelet (the paper uses 8).
        head_dim: channels per attention head.
        kernel_size: ``(kt, kh, kw)`` of the Conv3D projections (odd sizes; see DESIGN.md on cost).
    """

    def __init__(self, channels: int, guidance_channels: int, window_size: int = 8, head_dim: int = 64,
                 kernel_size: tuple[int, int, int] = (3, 3, 3)):
        super().__init__()
        self.window_size = window_size
        self.heads = num_heads(channels, head_dim)
        padding = tuple(k // 2 for k in kernel_size)

        def conv(cin: int, cout: int) -> nn.Conv3d:
            return nn.Conv3d(cin, cout, kernel_size, padding=padding)

        self.norm_self = ChannelNorm(channels)
        self.to_qkv = conv(channels, 3 * channels)
        self.self_out = nn.Linear(channels, channels)
        self.norm_cross = ChannelNorm(channels)
        self.norm_guidance = ChannelNorm(guidance_channels)
        self.to_q_cross = conv(channels, channels)
        self.to_kv_cross = conv(guidance_channels, 2 * channels)
        self.cross_out = nn.Linear(channels, channels)
        for linear in (self.self_out, self.cross_out):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: nn.Linear) -> torch.Tensor:
        """Attention inside tubelets. ``q, k, v``: ``(B, C, T, H, W)`` -> ``(B, C, T, H, W)``."""
        window = (q.shape[2], self.window_size, self.window_size)
        q, spec = pad_volume(q, window)
        k, _ = pad_volume(k, window)
        v, _ = pad_volume(v, window)
        size = tuple(q.shape[2:])
        groups = window_groups(size, spec, window, q.shape[0], q.device)
        tokens = grouped_attention(*(to_windows(x, window) for x in (q, k, v)), heads=self.heads, groups=groups)
        return crop_volume(from_windows(out(tokens), window, q.shape[0], size), spec)

    def forward(self, f: torch.Tensor, g: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``f``: ``(B * T, C, H, W)``, ``g``: ``(B * T, Cg, H, W)`` with ``T = num_frames`` -> like ``f``."""
        x = rearrange(f, "(b t) c h w -> b c t h w", t=num_frames)
        guide = rearrange(g, "(b t) c h w -> b c t h w", t=num_frames)
        q, k, v = self.to_qkv(self.norm_self(x)).chunk(3, dim=1)
        x = x + self._attend(q, k, v, self.self_out)  # Eq. 3
        q = self.to_q_cross(self.norm_cross(x))
        k, v = self.to_kv_cross(self.norm_guidance(guide)).chunk(2, dim=1)
        x = x + self._attend(q, k, v, self.cross_out)  # Eq. 4
        return rearrange(x, "b c t h w -> (b t) c h w")
