"""Seconds per output frame of SATeCo, per component, and achieved TFLOP/s.

    python benchmarks/bench_components.py                         # tiny preset on the CPU
    python benchmarks/bench_components.py --preset sd21 --size 320x180 --steps 50 \\
        --device cuda --dtype bfloat16                            # the DESIGN.md reference run

Weights are random (the FLOPs are the real ones). Each component runs once to warm up, then
``--repeat`` times; the table gives the median. FLOPs come from ``torch.utils.flop_counter``
(matmuls, convolutions and attention), counted on one extra run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from satecco.build import build_model
from satecco.diffusion import sampling_timesteps
from satecco.presets import get_preset


def measure(fn, device: torch.device, repeat: int, count_flops: bool = True) -> tuple[float, float, object]:
    """(median seconds, FLOPs (0 unless ``count_flops``), last result) of ``fn()``."""
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if not count_flops:
        return statistics.median(times), 0.0, result
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return statistics.median(times), counter.get_total_flops(), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", default="160x90", help="LR WxH (output is 4x)")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--steps", type=int, help="sampling steps (default: the preset's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    width, height = (int(v) for v in args.size.split("x"))
    preset = get_preset(args.preset).with_diffusion(steps=args.steps)
    model, diffusion = build_model(preset)
    model = model.to(device=device, dtype=dtype).eval()
    multiple = model.spatial_multiple // model.scale
    height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple  # as the pipeline pads
    lr = torch.rand(1, args.frames, 3, height, width, device=device, dtype=dtype) * 2 - 1
    steps = len(sampling_timesteps(diffusion))
    rows = {}
    with torch.inference_mode():
        rows["upscaler"] = measure(lambda: model.upscaler(lr), device, args.repeat)
        upscaled = rows["upscaler"][2]
        rows["vae encoder"] = measure(lambda: model.encode(upscaled), device, args.repeat)
        latents, features = rows["vae encoder"][2]
        rows["latent encoder"] = measure(lambda: model.latent_encoder(latents), device, args.repeat)
        guidance = rows["latent encoder"][2]
        t = torch.tensor(500, device=device)
        rows["unet step"] = measure(lambda: model.predict_noise(latents, t, guidance, args.frames), device,
                                    args.repeat)
        rows["vae decoder"] = measure(lambda: model.decode(latents, features, args.frames), device, args.repeat)
        decoded = rows["vae decoder"][2]
        rows["refiner"] = measure(lambda: model.refiner(upscaled, decoded), device, args.repeat)

    counts = {name: steps if name == "unet step" else 1 for name in rows}
    total_s = sum(rows[n][0] * counts[n] for n in rows)
    total_flops = sum(rows[n][1] * counts[n] for n in rows)
    report = {
        "preset": args.preset, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "dtype": args.dtype, "lr": f"{width}x{height}",
        "hr": f"{4 * width}x{4 * height}", "frames": args.frames, "steps": steps,
        "seconds_per_frame": total_s / args.frames, "tflops_per_frame": total_flops / args.frames / 1e12,
        "achieved_tflops_per_s": total_flops / total_s / 1e12,
        "components": {n: {"seconds": rows[n][0], "calls": counts[n], "tflop": rows[n][1] / 1e12,
                           "tflops_per_s": rows[n][1] / rows[n][0] / 1e12} for n in rows},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['preset']} on {report['device']} ({report['threads']} threads, {args.dtype}): "
          f"{report['lr']} -> {report['hr']}, {args.frames} frames, {steps} steps")
    print(f"{'component':<16}{'s/call':>10}{'calls':>7}{'s/frame':>10}{'TFLOP/call':>12}{'TFLOP/s':>9}")
    for name, (seconds, flops, _) in rows.items():
        print(f"{name:<16}{seconds:>10.4f}{counts[name]:>7}{seconds * counts[name] / args.frames:>10.4f}"
              f"{flops / 1e12:>12.4f}{flops / seconds / 1e12:>9.3f}")
    print(f"{'total':<16}{'':>17}{report['seconds_per_frame']:>10.4f}{total_flops / 1e12:>12.3f}"
          f"{report['achieved_tflops_per_s']:>9.3f}")


if __name__ == "__main__":
    main()
