"""The one GPU check of the sd21 path: prints one JSON object, in under 8 minutes on one GPU.

    python benchmarks/gpu_check.py                        # one GPU: sd21, 720p output, bf16
    python benchmarks/gpu_check.py --device cpu --tiny    # the dry run that tests/test_gpu_check.py runs

Weights are random in the real architectures (the FLOPs are the real ones). In one run, it measures:

- ``components``: SATeCo's upscaler, VAE encoder, latent encoder, one UNet step, VAE decoder and refiner on
  one window (6 frames) at the output size, eager and compiled (``torch.compile`` of the guided UNet step
  and the guided VAE decoder, as ``--compile`` does), with TFLOP/s and the compile times;
- ``per_frame``: seconds per output frame and frames per second at 50 steps and at the preset's steps;
- ``peer``: the frame-wise peer architecture, the SD x4 upscaler's UNet and VAE decoder built from their
  diffusers configs, on the same frames at 50 steps, and SATeCo's frames per second over the peer's;
- ``engines``: ``satecco upscale`` through the Ray engine and in-process on one short clip (frames/s);
- ``training``: one optimiser step of each stage (``upscaler``, ``unet``, ``vae``, ``refiner``) at a
  small crop, in bf16 mixed precision on a GPU (``--precision bf16``) with gradient checkpointing in
  stages ``unet`` and ``vae`` (as ``configs/train/sd21-*.yaml``), its seconds and peak memory.

Targets on one H200 (issue 16): at least 2.0 output frames/s end to end at 720p with 50 steps, and at
least 1.8x the frame-wise peer's frames/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_components import measure
from diffusers import AutoencoderKL, UNet2DConditionModel

from satecco.build import build_model
from satecco.diffusion import sampling_timesteps
from satecco.presets import get_preset
from satecco.training.config import load_train_config
from satecco.training.stages import STAGE_CLASSES

SATECCO = str(Path(sys.executable).parent / "satecco")
#: the sd21 training configs, whose gradient checkpointing the training steps follow
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
#: The SD x4 upscaler's UNet (stabilityai/stable-diffusion-x4-upscaler unet/config.json): the noisy latent
#: and the LR frame in, its noise level as a class label.
PEER_UNET = dict(in_channels=7, out_channels=4, block_out_channels=(256, 512, 512, 1024), layers_per_block=2,
                 attention_head_dim=8, cross_attention_dim=1024, num_class_embeds=1000,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 only_cross_attention=(True, True, True, False), use_linear_projection=True)
#: Its VAE (x4 downsampling, 4 latent channels).
PEER_VAE = dict(block_out_channels=(128, 256, 512), latent_channels=4, layers_per_block=2,
                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3)
#: For the dry run: the same architectures, narrow.
TINY_PEER_UNET = {**PEER_UNET, "block_out_channels": (32, 32, 64, 64), "attention_head_dim": 4,
                  "cross_attention_dim": 32, "norm_num_groups": 8}
TINY_PEER_VAE = {**PEER_VAE, "block_out_channels": (16, 32, 32), "norm_num_groups": 8}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def satecco_components(model, lr: torch.Tensor, frames: int, device: torch.device, repeat: int) -> dict:
    """(median seconds, FLOPs) of each SATeCo component on one window ``lr`` ``(1, T, 3, h, w)``."""
    rows = {}
    with torch.inference_mode():
        rows["upscaler"] = measure(lambda: model.upscaler(lr), device, repeat)
        upscaled = rows["upscaler"][2]
        rows["vae encoder"] = measure(lambda: model.encode(upscaled), device, repeat)
        latents, features = rows["vae encoder"][2]
        rows["latent encoder"] = measure(lambda: model.latent_encoder(latents), device, repeat)
        guidance = rows["latent encoder"][2]
        t = torch.tensor(500, device=device)
        rows["unet step"] = measure(lambda: model.predict_noise(latents, t, guidance, frames), device, repeat)
        rows["vae decoder"] = measure(lambda: model.decode(latents, features, frames), device, repeat)
        rows["refiner"] = measure(lambda: model.refiner(upscaled, rows["vae decoder"][2]), device, repeat)
    return {name: (seconds, flops) for name, (seconds, flops, _) in rows.items()}


def compiled_components(model, lr: torch.Tensor, frames: int, device: torch.device, repeat: int,
                        backend: str = "inductor") -> dict:
    """The UNet step and the VAE decoder under ``torch.compile`` (adapters included): their seconds,
    FLOPs (0: eager's count holds), compile seconds (the first call) and largest difference from eager's
    output."""
    from satecco.pipeline import compile_model

    with torch.inference_mode():
        upscaled = model.upscaler(lr)
        latents, features = model.encode(upscaled)
        guidance = model.latent_encoder(latents)
        t = torch.tensor(500, device=device)
        eager = {"unet step": model.predict_noise(latents, t, guidance, frames),
                 "vae decoder": model.decode(latents, features, frames)}
    compile_model(model, backend)
    with torch.inference_mode():
        upscaled = model.upscaler(lr)
        latents, features = model.encode(upscaled)
        guidance = model.latent_encoder(latents)
        t = torch.tensor(500, device=device)
        calls = {"unet step": lambda: model.predict_noise(latents, t, guidance, frames),
                 "vae decoder": lambda: model.decode(latents, features, frames)}
        rows = {}
        for name, call in calls.items():
            sync(device)
            start = time.perf_counter()
            call()
            sync(device)
            compile_seconds = time.perf_counter() - start
            seconds, flops, output = measure(call, device, repeat, count_flops=False)  # eager's FLOPs
            difference = float((output.float() - eager[name].float()).abs().max())
            rows[name] = (seconds, flops, compile_seconds, difference)
    return rows


def per_frame(rows: dict, steps: int, frames: int) -> dict:
    seconds = sum(row[0] * (steps if name == "unet step" else 1) for name, row in rows.items()) / frames
    return {"steps": steps, "seconds_per_frame": seconds, "frames_per_second": 1 / seconds}


def peer(tiny: bool, lr: torch.Tensor, device: torch.device, dtype: torch.dtype, repeat: int, steps: int) -> dict:
    """The SD x4 upscaler's UNet step and VAE decoder on the same frames; seconds per output frame."""
    unet = UNet2DConditionModel(**(TINY_PEER_UNET if tiny else PEER_UNET)).to(device, dtype).eval()
    vae = AutoencoderKL(**(TINY_PEER_VAE if tiny else PEER_VAE)).to(device, dtype).eval()
    frames, _, height, width = lr.shape[1:]
    latents = torch.randn(frames, 4, height, width, device=device, dtype=dtype)  # the x4 VAE: latent = LR size
    sample = torch.cat([latents, lr[0]], dim=1)
    context = torch.randn(frames, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    labels = torch.full((frames,), 20, device=device)
    with torch.inference_mode():
        step = measure(lambda: unet(sample, 500, context, class_labels=labels).sample, device, repeat)
        decoder = measure(lambda: vae.decode(latents).sample, device, repeat)
    seconds = (step[0] * steps + decoder[0]) / frames
    return {"unet step": {"seconds": step[0], "tflop": step[1] / 1e12},
            "vae decoder": {"seconds": decoder[0], "tflop": decoder[1] / 1e12},
            "steps": steps, "seconds_per_frame": seconds, "frames_per_second": 1 / seconds}


def engines(preset: str, device: str, size: tuple[int, int], frames: int, steps: int) -> dict:
    """Frames per second of ``satecco upscale`` in-process and through the Ray engine, each a fresh process."""
    from satecco.video.write import VideoWriter

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mkv"
        rng = np.random.default_rng(0)
        with VideoWriter(clip, *size, 25, codec="ffv1") as writer:
            for _ in range(frames):
                writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        for engine in ("local", "ray"):
            start = time.perf_counter()
            subprocess.run([SATECCO, "upscale", str(clip), "-o", str(Path(tmp) / engine), "--engine", engine,
                            "--preset", preset, "--random-weights", "--device", device, "--steps", str(steps),
                            "--codec", "ffv1", "--no-progress"], check=True, capture_output=True)
            rates[engine] = frames / (time.perf_counter() - start)
    return {"frames": frames, "frames_per_second": rates, "ray_over_local": rates["ray"] / rates["local"]}


def training_steps(preset, device: torch.device, crop: int, frames: int) -> dict:
    """One optimiser step of each stage at ``crop``: seconds and peak memory (bytes; GPU only)."""
    rows = {}
    for stage_name, stage_class in STAGE_CLASSES.items():
        model, diffusion = build_model(preset)
        checkpointing = load_train_config(str(CONFIGS / f"sd21-{stage_name}.yaml"), stage_name).gradient_checkpointing
        if checkpointing:
            model.enable_gradient_checkpointing()
        stage = stage_class(model.to(device), diffusion).to(device).train()
        optimizer = torch.optim.AdamW([p for p in stage.parameters() if p.requires_grad], lr=5e-5)
        hr = torch.rand(1, frames, 3, crop, crop, device=device) * 2 - 1
        lr = torch.nn.functional.avg_pool2d(hr.flatten(0, 1), 4).unflatten(0, (1, frames))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):  # --precision bf16
            loss, _ = stage(hr, lr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync(device)
        rows[stage_name] = {"seconds": time.perf_counter() - start, "loss": loss.item(),
                            "gradient_checkpointing": checkpointing,
                            "peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None}
        del stage, model, optimizer
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny preset and narrow peer networks (dry run)")
    parser.add_argument("--size", default=None, help="output WxH (default: 1280x720; --tiny: 64x48)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--crop", type=int, default=None, help="training crop (default: 256; --tiny: 32)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--skip", default="", help="sections left out, comma-separated: compile, peer, engines, "
                                                   "training")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    preset = get_preset("tiny" if args.tiny else "sd21")
    width, height = (int(v) for v in (args.size or ("64x48" if args.tiny else "1280x720")).split("x"))
    frames = 6
    model, diffusion = build_model(preset)
    model = model.to(device=device, dtype=dtype).eval()
    multiple = model.spatial_multiple // model.scale
    lr_h, lr_w = -(-height // 4 // multiple) * multiple, -(-width // 4 // multiple) * multiple
    lr = torch.rand(1, frames, 3, lr_h, lr_w, device=device, dtype=dtype) * 2 - 1
    preset_steps = len(sampling_timesteps(diffusion))
    started = time.perf_counter()
    eager = satecco_components(model, lr, frames, device, args.repeat)
    skip = set(filter(None, args.skip.split(",")))
    rows = {} if "compile" in skip else compiled_components(model, lr, frames, device, args.repeat,
                                                            args.compile_backend)
    compiled = {**eager, **{name: row[:2] for name, row in rows.items()}}
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "preset": preset.name, "dtype": str(dtype).removeprefix("torch."), "output": f"{4 * lr_w}x{4 * lr_h}",
        "frames": frames,
        "components": {name: {"seconds": s, "tflop": f / 1e12, "tflops_per_s": f / s / 1e12,
                              **({"compiled_seconds": rows[name][0], "compile_seconds": rows[name][2],
                                  "compiled_max_abs_diff": rows[name][3]} if name in rows else {})}
                       for name, (s, f) in eager.items()},
        "per_frame": {mode: [per_frame(table, steps, frames) for steps in sorted({50, preset_steps})]
                      for mode, table in (("eager", eager), ("compiled", compiled)) if mode == "eager" or rows},
    }
    fifty = min(row["seconds_per_frame"] for mode in report["per_frame"].values() for row in mode
                if row["steps"] == 50)
    del model
    sections = {"peer": lambda: peer(args.tiny, lr, device, dtype, args.repeat, 50),
                "engines": lambda: engines(preset.name, args.device, (lr_w, lr_h), frames, 1 if args.tiny else 4),
                "training": lambda: training_steps(preset, device, args.crop or (32 if args.tiny else 256), frames)}
    for name, section in sections.items():  # one failing section leaves the others' figures (one GPU run)
        if name in skip:
            continue
        try:
            report[name] = section()
        except Exception as error:  # noqa: BLE001 - reported in the JSON, the run goes on
            report[name] = {"error": f"{type(error).__name__}: {error}"}
    if "seconds_per_frame" in report.get("peer", {}):
        report["peer"]["satecco_over_peer"] = report["peer"]["seconds_per_frame"] / fifty
    report["seconds"] = time.perf_counter() - started
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
