"""The ``satecco`` command line: ``upscale``, ``evaluate`` and ``train``.

Each command's options are the fields of one model in :mod:`satecco.options` (``train``: of
:class:`~satecco.training.config.TrainConfig`), which also validates them and the values of a
``--config`` YAML file. Heavy libraries are imported inside the command functions so that
``satecco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from satecco.options import EvaluateOptions, UpscaleOptions, add_options, run_command, validate

#: Namespace entries that are not options of a command.
NOT_OPTIONS = ("command", "func", "verbose", "config")


def build_parser() -> argparse.ArgumentParser:
    from satecco.jobs.train import add_train_arguments

    parser = argparse.ArgumentParser(prog="satecco", description="SATeCo video super-resolution (x4).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", required=True)
    upscale = commands.add_parser("upscale", help="upscale videos x4", description=(
        "Upscale video files, frame folders, folders of videos or globs x4."))
    probe = commands.add_parser("probe", help="what upscale would do with each input, before any model work",
                                description="Take upscale's inputs and options; print, per input, its streams, "
                                            "size in and out, frames, frame rate, colour tags, what the output "
                                            "keeps or loses, and the output path or why it is refused.")
    for command, function in ((upscale, cmd_upscale), (probe, cmd_probe)):
        command.add_argument("--config", metavar="FILE",
                             help="YAML file of option values (e.g. configs/sd21.yaml); the command line wins")
        add_options(command, UpscaleOptions)
        command.set_defaults(func=function)
    evaluate = commands.add_parser("evaluate", help="metrics and a visual report of predictions, against ground "
                                   "truth or without it", description=(
        "Compare predicted clips with ground truth (--gt), or, without it, measure them alone with the "
        "no-reference metrics: video files or PNG frame folders, one clip or folders of clips (REDS4/Vid4 "
        "structure: ROOT/<clip>/<frame>.png; videos pair by stem). Writes REPORT_DIR/metrics.json and "
        "REPORT_DIR/index.html."))
    add_options(evaluate, EvaluateOptions)
    evaluate.set_defaults(func=cmd_evaluate)
    train = commands.add_parser("train", help="train one SATeCo stage on Ray Train", description=(
        "Train one stage (paper §3.5; `base` is the tiny preset's stage 0) with Ray Train, tracked in MLflow. "
        "A rerun with the same run name resumes from its last checkpoint."))
    add_train_arguments(train)
    return parser


def given_options(args: argparse.Namespace) -> dict:
    """The options the command line gave (the parser sets no defaults: the options' models do)."""
    return {key: value for key, value in vars(args).items() if key not in NOT_OPTIONS}


def cmd_upscale(args: argparse.Namespace) -> int:
    from satecco.cluster import check_lasting

    options = validate(UpscaleOptions, given_options(args), args.config, not_in_file=("inputs",))
    check_lasting(options.output, "--output")  # not into a Ray job's temporary working copy
    spec, settings = _model_spec(options), _video_settings(options)
    if options.dry_run:
        return _dry_run(options, spec)
    tracking_uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    from satecco.registry import resolve_registered

    spec = resolve_registered(spec, tracking_uri)  # models:/NAME@ALIAS -> that version's files
    _check_model_files(spec)
    if not tracking_uri:
        return _report(_upscale(options, spec, settings))
    from satecco.lineage import UpscaleRun

    with UpscaleRun(tracking_uri, options.experiment, spec, settings, options.engine, options.output,
                    weights_uri=options.weights) as run:
        results = _upscale(options, spec, settings)
        run.finish(results)
    print(f"MLflow run {run.run_id} at {tracking_uri}")
    return _report(results)


def _upscale(options: UpscaleOptions, spec, settings) -> list:
    from satecco.inputs import expand_inputs

    inputs = expand_inputs(options.inputs, recursive=options.recursive)
    progress = not options.no_progress
    if options.engine == "ray":
        if options.dashboard and not options.address:
            from satecco.cluster import init_ray

            print(f"Ray dashboard: {init_ray(None, dashboard=True)}", file=sys.stderr)
        from satecco.pipelines.config import load_pipeline_config
        from satecco.pipelines.upscale import upscale_on_ray

        results = upscale_on_ray(inputs, options.output, spec, settings,
                                 load_pipeline_config(options.pipeline_config), address=options.address,
                                 progress=progress)
    else:
        from functools import partial

        from satecco.build import build_pipeline
        from satecco.engine_local import upscale_locally

        # Built only once OUTDIR is known to be writable: a bad OUTDIR costs no model build.
        results = upscale_locally(inputs, options.output, partial(build_pipeline, spec), settings, progress=progress)
    return _compare(options, settings, results) if options.compare else results


def _compare(options: UpscaleOptions, settings, results: list) -> list:
    """``--compare``: each output's side-by-side video (:mod:`satecco.compare`), its path printed; a
    comparison that cannot be made fails its input, with the reason."""
    from dataclasses import replace

    from satecco.compare import write_comparison
    from satecco.errors import SateccoError
    from satecco.preflight import prepare_input

    compared = []
    for result in results:
        if result.status == "ok":
            try:
                prepared = prepare_input(result.input, settings)
                if isinstance(prepared, str):
                    raise ValueError(prepared)
                print(write_comparison(result.input, result.output, prepared.first, prepared.frame_rate,
                                       options.method))
            except (SateccoError, OSError, ValueError) as error:
                result = replace(result, status="failed", error=f"{result.input}: --compare: {error}")
        compared.append(result)
    return compared


def _report(results: list) -> int:
    """Print each output (or why it was skipped) and the failure count; the exit status."""
    for result in results:
        if result.status == "ok":
            print(f"{result.output}  ({result.frames} frames, {result.seconds:.1f} s)")
        elif result.status == "skipped":
            print(f"{result.output}  (already there, skipped; --overwrite replaces it)")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"satecco: {len(failed)} of {len(results)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_probe(args: argparse.Namespace) -> int:
    options = validate(UpscaleOptions, given_options(args), args.config, not_in_file=("inputs",))
    failed, _ = _describe_inputs(options)
    return 1 if failed else 0


def _describe_inputs(options: UpscaleOptions) -> tuple[bool, list]:
    """Print what ``upscale`` would do with each input; ``(whether any is refused, every Described)``."""
    from satecco.describe import describe_input
    from satecco.inputs import assign_outputs, expand_inputs
    from satecco.presets import get_preset

    inputs = expand_inputs(options.inputs, recursive=options.recursive)
    scale = get_preset(options.preset).scale
    settings = _video_settings(options)
    targets, refused = assign_outputs(inputs, options.output, settings)
    refusals = {result.input: result.error for result in refused}
    failed, described = bool(refused), []
    for entry in inputs:
        if entry.source in refusals:
            print(f"{entry.source}\n  {refusals[entry.source]}")
        elif entry.source in targets:
            described.append(describe_input(entry.source, targets[entry.source], scale, settings))
            failed |= described[-1].size is None
            print("\n".join(described[-1].lines))
    return failed, described


def _dry_run(options: UpscaleOptions, spec) -> int:
    """``upscale --dry-run``: the probe's answer per input, its windows and Ray segments, and the job's
    estimated cost (:mod:`satecco.cost`); nothing is built or written."""
    from satecco.cost import estimate_lines
    from satecco.diffusion import sampling_timesteps
    from satecco.pipelines.config import default_pipeline_config, load_pipeline_config
    from satecco.presets import NO_DIFFUSION, get_preset
    from satecco.windows import plan_windows

    failed, described = _describe_inputs(options)
    settings = _video_settings(options)
    per_segment = (load_pipeline_config(options.pipeline_config) or default_pipeline_config({})).windows_per_segment
    for item in (d for d in described if d.size):
        windows = len(plan_windows(item.frames, settings.window, settings.window_overlap))
        print(f"{item.lines[0]}: {windows} windows; {-(-windows // per_segment)} Ray segments of up to "
              f"{per_segment} windows")
    outputs = [(d.frames, *d.size) for d in described if d.size]
    if spec.method in NO_DIFFUSION:  # the table holds SATeCo's costs only
        print(estimate_lines(outputs, spec.preset, 1, table=[])[0])
        print(f"estimate: --method {spec.method} runs no diffusion; the cost table does not cover it")
    else:
        diffusion = get_preset(spec.preset).with_diffusion(**spec.diffusion_overrides()).diffusion
        print("\n".join(estimate_lines(outputs, spec.preset, len(sampling_timesteps(diffusion)))))
    return 1 if failed else 0


def _model_spec(options: UpscaleOptions):
    from satecco.presets import ModelSpec

    return ModelSpec(preset=options.preset, base_model=options.base_model, weights=options.weights,
                     steps=options.steps, start_step=options.start_step, sampler=options.sampler,
                     device=options.device, dtype=options.dtype, tile=options.tile,
                     tile_overlap=options.tile_overlap, batch=options.batch, method=options.method,
                     compile="inductor" if options.compile else None,
                     random_weights=options.random_weights, beta_schedule=options.beta_schedule,
                     prediction_type=options.prediction_type, refiner_w=options.refiner_w,
                     no_sfa=tuple(sorted(set(options.no_sfa or ()))),  # sorted: one fingerprint per choice
                     no_tfa=tuple(sorted(set(options.no_tfa or ()))), color_fix=options.color_fix)


def _video_settings(options: UpscaleOptions):
    from satecco.inputs import VideoSettings
    from satecco.presets import FRAME_BY_FRAME

    # These methods' output frames depend on their own input frame only: their windows need no overlap.
    overlap = 0 if options.method in FRAME_BY_FRAME else options.window_overlap
    return VideoSettings(window=options.window, window_overlap=overlap, seed=options.seed, codec=options.codec,
                         encoder=options.encoder_settings(), fps=options.fps, suffix=options.suffix,
                         overwrite=options.overwrite,
                         deinterlace=options.deinterlace, allow_fewer_bits=options.allow_fewer_bits,
                         outscale=options.outscale, height=options.height, max_height=options.max_height,
                         frames=options.frame_range(), preview=options.preview)


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
    from satecco.evaluate import EvalSettings, pair_clips
    from satecco.evaluation_summary import log_to_mlflow, summarize, write_metrics_json
    from satecco.report import write_report

    options = validate(EvaluateOptions, given_options(args))
    settings = EvalSettings(metrics=tuple(dict.fromkeys(options.metrics)) if options.metrics else None,
                            reference=options.gt is not None, crop_border=options.crop_border,
                            y_channel=options.y_channel, metric_weights=options.metric_weights,
                            clip_model=options.clip_model, niqe_params=options.niqe_params, device=options.device)
    preds = _named_preds(options.pred)
    pairs = pair_clips(preds, options.gt)
    if options.engine == "ray":
        from satecco.pipelines.evaluate import evaluate_on_ray

        results = evaluate_on_ray(pairs, settings, address=options.address, actors=options.actors)
    else:
        from satecco.evaluate import evaluate_locally

        results = evaluate_locally(pairs, settings)
    summary = summarize(results, settings, preds, options.gt)
    path = write_metrics_json(options.output, summary)
    page = write_report(options.output, summary, results)
    tracking_uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking_uri:
        run_id = log_to_mlflow(options.output, summary, tracking_uri, options.experiment)
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

    preset = get_preset(spec.preset)
    spec.check_weights()
    spec = spec.with_embedded_default()
    if spec.base_model:
        from satecco.build import check_base_model_folder
        from satecco.schedule import base_schedule, read_base_schedule

        check_base_model_folder(spec.base_model)
        schedule, source = read_base_schedule(spec.base_model)  # a contradiction is refused before any work
        base_schedule(preset.diffusion, schedule, spec.diffusion_overrides(), source)
    if spec.weights:
        from satecco.checkpoints import read_weight_configs

        read_weight_configs(spec.weights)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
