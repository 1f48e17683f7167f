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


def window_groups(size: tuple[int, int, int], spec: tuple[int, int, int, int, int, int],
                  window: tuple[int, int, int], batch: int, device: torch.device
                  ) -> list[tuple[torch.Tensor | slice, torch.Tensor | None]]:
    """The windows of a padded ``(T, H, W)`` volume (``size``, padded by ``spec``) grouped by which of
    their tokens are real: ``[(windows, tokens)]``, ``windows`` indexing :func:`to_windows`' first axis
    (batch included) and ``tokens`` the real tokens of each of them (None: all, an interior window).

    Attention over a group's real tokens needs no mask, so every call can take SDPA's fast kernels (a
    boolean mask keeps them off flash attention): interior windows form one group, and the edge windows
    at most three more (right, bottom, corner). Every window holds at least one real token because each
    axis is padded by less than one window.
    """
    if not any(spec):
        return [(slice(None), None)]  # every window whole
    # Index bookkeeping from sizes alone: on the CPU (no device syncs; the meta device has no unique),
    # then the indices move to ``device``.
    valid = torch.zeros((1, 1, *size), dtype=torch.bool)
    crop_volume(valid, spec).fill_(True)
    patterns = to_windows(valid, window)[..., 0]  # (nWin, S)
    unique, which = torch.unique(patterns, dim=0, return_inverse=True)
    groups = []
    for index, pattern in enumerate(unique):
        windows = torch.nonzero(which == index)[:, 0]
        windows = (windows[None] + len(patterns) * torch.arange(batch)[:, None]).reshape(-1)
        tokens = None if bool(pattern.all()) else torch.nonzero(pattern)[:, 0].to(device)
        groups.append((windows.to(device), tokens))
    return groups


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                      groups: list[tuple[torch.Tensor | slice, torch.Tensor | None]]) -> torch.Tensor:
    """:func:`multihead_attention` of ``(N, S, C)`` window sequences, group by group over their real tokens
    only (:func:`window_groups`), without a mask; padded query positions come back zero."""
    if len(groups) == 1 and groups[0][1] is None:  # no window padded: one call, no copies
        return multihead_attention(q, k, v, heads)
    result = torch.zeros_like(q)
    for windows, tokens in groups:
        if tokens is None:
            result[windows] = multihead_attention(q[windows], k[windows], v[windows], heads)
        else:
            picked = [x[windows][:, tokens] for x in (q, k, v)]
            result[windows[:, None], tokens[None, :]] = multihead_attention(*picked, heads)
    return result


def multihead_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Scaled dot-product attention over ``(N, S, C)`` sequences split into ``heads``, unmasked (so SDPA
    may pick its flash or memory-efficient kernel); returns ``(N, Sq, C)``."""
    q, k, v = (rearrange(x, "n s (h d) -> n h s d", h=heads) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return rearrange(out, "n h s d -> n s (h d)")


def num_heads(channels: int, head_dim: int) -> int:
    """Heads for ``channels`` at ``head_dim`` per head (at least one; ``channels`` must divide evenly)."""
    heads = max(channels // head_dim, 1)
    if channels % heads:
        raise ValueError(f"channels={channels} is not divisible into {heads} heads of head_dim={head_dim}")
    return heads
