"""Window partitioning and multi-head attention shared by TMSA (upscaler) and TFA.

Feature volumes are ``(B, C, T, H, W)``; a window of ``(wt, wh, ww)`` becomes a sequence of
``wt * wh * ww`` tokens, ordered ``(t h w)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def pad_volume(x: torch.Tensor, window: tuple[int, int, int], shift: tuple[int, int, int] = (0, 0, 0),
               mode: str = "constant") -> tuple[torch.Tensor, tuple[int, int, int, int, int, int]]:
    """Pad ``(B, C, T, H, W)`` so that ``shift`` leads and every axis is a multiple of ``window``.

    Returns the padded volume and the ``F.pad`` tuple ``(w0, w1, h0, h1, t0, t1)`` used.
    """
    pads = []
    for size, win, lead in zip(x.shape[2:], window, shift, strict=True):
        pads.append((lead, (-(size + lead)) % win))
    (t0, t1), (h0, h1), (w0, w1) = pads
    spec = (w0, w1, h0, h1, t0, t1)
    if any(spec):
        x = F.pad(x, spec, mode=mode) if mode != "constant" else F.pad(x, spec)
    return x, spec


def crop_volume(x: torch.Tensor, spec: tuple[int, int, int, int, int, int]) -> torch.Tensor:
    """Undo :func:`pad_volume` on ``(B, C, T, H, W)``."""
    w0, w1, h0, h1, t0, t1 = spec
    t, h, w = x.shape[2:]
    return x[:, :, t0:t - t1, h0:h - h1, w0:w - w1]


def to_windows(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """``(B, C, T, H, W)`` (each axis a multiple of ``window``) -> ``(B * nT * nH * nW, wt * wh * ww, C)``."""
    wt, wh, ww = window
    return rearrange(x, "b c (nt wt) (nh wh) (nw ww) -> (b nt nh nw) (wt wh ww) c", wt=wt, wh=wh, ww=ww)


def from_windows(tokens: torch.Tensor, window: tuple[int, int, int], batch: int,
                 size: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of :func:`to_windows`: ``(B * nT * nH * nW, S, C)`` -> ``(B, C, T, H, W)``."""
    wt, wh, ww = window
    t, h, w = size
    return rearrange(tokens, "(b nt nh nw) (wt wh ww) c -> b c (nt wt) (nh wh) (nw ww)",
                     b=batch, nt=t // wt, nh=h // wh, nw=w // ww, wt=wt, wh=wh, ww=ww)


def key_padding_mask(size: tuple[int, int, int], spec: tuple[int, int, int, int, int, int],
                     window: tuple[int, int, int], batch: int, device: torch.device) -> torch.Tensor | None:
    """Boolean SDPA mask ``(B * nWin, 1, 1, S)`` that hides padded keys, or ``None`` without padding.

    ``size`` is the padded ``(T, H, W)``. Every window holds at least one real token because each
    axis is padded by less than one window.
    """
    if not any(spec):
        return None
    valid = torch.zeros((1, 1, *size), dtype=torch.bool, device=device)
    crop_volume(valid, spec).fill_(True)
    mask = to_windows(valid, window)[..., 0]  # (nWin, S)
    return mask.repeat(batch, 1)[:, None, None, :]


def multihead_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention over ``(N, S, C)`` sequences split into ``heads``; returns ``(N, Sq, C)``."""
    q, k, v = (rearrange(x, "n s (h d) -> n h s d", h=heads) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return rearrange(out, "n h s d -> n s (h d)")


def num_heads(channels: int, head_dim: int) -> int:
    """Heads for ``channels`` at ``head_dim`` per head (at least one; ``channels`` must divide evenly)."""
    heads = max(channels // head_dim, 1)
    if channels % heads:
        raise ValueError(f"channels={channels} is not divisible into {heads} heads of head_dim={head_dim}")
    return heads
