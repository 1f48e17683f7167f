"""Temporal mutual self-attention (TMSA), from VRT (Liang et al., 2022), used by the video upscaler.

A TMSA layer cuts the ``(B, C, T, H, W)`` volume into 3D windows of two frames × ``wh × ww`` pixels.
Inside a window, *mutual* attention lets each frame query the other (frame 1 → keys/values of frame 2
and back), *self*-attention runs over all tokens, and a linear layer fuses the two. Alternate layers
shift the windows by half a window in time and space, so frame pairs (0,1),(2,3)… and (1,2),(3,4)…
both exchange information. We shift by replicate-padding rather than VRT's cyclic roll plus attention
mask, so no window mixes the two borders of a frame; VRT's relative position bias is left out so the
attention stays on the fused ``scaled_dot_product_attention`` kernels.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from satecco.models.attention import crop_volume, from_windows, multihead_attention, pad_volume, to_windows


class GEGLU(nn.Module):
    """Gated feed-forward on channel-last tokens ``(..., C) -> (..., C)``."""

    def __init__(self, dim: int, mult: int = 2):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * nn.functional.gelu(gate))


class TMSALayer(nn.Module):
    """One TMSA layer: windowed mutual + self attention, then a GEGLU feed-forward, both residual.

    Args:
        dim: channels ``C``.
        heads: attention heads.
        window: ``(2, wh, ww)``; the temporal extent must be 2 (a frame pair).
        shifted: shift the windows by half a window on every axis.
        mlp_ratio: hidden width of the feed-forward as a multiple of ``dim``.
    """

    def __init__(self, dim: int, heads: int, window: tuple[int, int, int] = (2, 8, 8), shifted: bool = False,
                 mlp_ratio: int = 2):
        super().__init__()
        if window[0] != 2:
            raise ValueError(f"TMSA windows pair two frames; got a temporal window of {window[0]}")
        self.window = tuple(window)
        self.shift = tuple(w // 2 for w in window) if shifted else (0, 0, 0)
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv_mutual = nn.Linear(dim, 3 * dim)
        self.qkv_self = nn.Linear(dim, 3 * dim)
        self.fuse = nn.Linear(2 * dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GEGLU(dim, mlp_ratio)

    def _window_attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, 2 * S, C)`` tokens of frame pairs -> ``(N, 2 * S, C)``."""
        q, k, v = self.qkv_mutual(tokens).chunk(3, dim=-1)
        q1, q2 = q.chunk(2, dim=1)
        k1, k2 = k.chunk(2, dim=1)
        v1, v2 = v.chunk(2, dim=1)
        mutual = torch.cat([multihead_attention(q1, k2, v2, self.heads),
                            multihead_attention(q2, k1, v1, self.heads)], dim=1)
        own = multihead_attention(*self.qkv_self(tokens).chunk(3, dim=-1), heads=self.heads)
        return self.fuse(torch.cat([mutual, own], dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, C, T, H, W)``."""
        h = rearrange(self.norm1(rearrange(x, "b c t h w -> b t h w c")), "b t h w c -> b c t h w")
        h, spec = pad_volume(h, self.window, self.shift, mode="replicate")
        size = tuple(h.shape[2:])
        h = from_windows(self._window_attention(to_windows(h, self.window)), self.window, x.shape[0], size)
        x = x + crop_volume(h, spec)
        y = rearrange(x, "b c t h w -> b t h w c")
        y = y + self.mlp(self.norm2(y))
        return rearrange(y, "b t h w c -> b c t h w")


class TMSABlock(nn.Module):
    """A residual group of TMSA layers (unshifted, shifted, …) closed by a ``(1, 3, 3)`` convolution."""

    def __init__(self, dim: int, depth: int, heads: int, window: tuple[int, int, int], mlp_ratio: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(
            TMSALayer(dim, heads, window, shifted=bool(i % 2), mlp_ratio=mlp_ratio) for i in range(depth)
        )
        self.conv = nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, C, T, H, W)``."""
        h = x
        for layer in self.layers:
            h = layer(h)
        return x + self.conv(h)
