"""Run one training stage as a Ray Train ``TorchTrainer``: the ``satecco train`` command and the
``jobs/train_<stage>.py`` entry points, which ``ray job submit`` can run (:func:`main`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from satecco.cluster import init_ray
from satecco.options import add_options, run_command
from satecco.training.config import COMMAND_LINE, TRAINING_STAGES, TrainConfig, load_train_config


def default_output(config: TrainConfig) -> str:
    """``STORAGE/NAME/final`` (stage ``base``: a diffusers folder) or ``final.safetensors``."""
    suffix = "" if config.stage == "base" else ".safetensors"
    return str(Path(config.storage_path) / config.name / f"final{suffix}")


def check_inputs(config: TrainConfig) -> None:
    """Fail on the driver, before any worker starts, on files the workers could not use."""
    from satecco.build import check_base_model_folder
    from satecco.checkpoints import read_weight_configs
    from satecco.video.read import count_frames

    if config.base_model:
        check_base_model_folder(config.base_model)
    if config.weights:
        read_weight_configs(config.weights)
    if config.val:
        frames = count_frames(config.val)
        if frames < config.frames:
            raise ValueError(f"{config.val}: held-out clip has {frames} frames, fewer than {config.frames}")


def start_ray(address: str | None) -> None:
    """Join ``address`` or start a local instance that serves Ray's dashboard on loopback (its URL is
    printed), because Ray Train needs the dashboard's state API: its placement-group cleaner asks it every
    second whether the run's controller lives, and removes the run's placement group when the answer is
    "no such actor". A local instance without a dashboard still records 127.0.0.1:8265 as its API
    server (ray/_private/services.py: "Modules like job or state APIs should be loaded although
    dashboard is disabled. Fix it."), so the cleaner asked whichever other Ray instance served a dashboard
    there, and killed the live run. The upscale pipeline has no such actor and starts without one."""
    url = init_ray(address, log_to_driver=True, dashboard=True)
    if url:
        print(f"Ray dashboard: {url}", file=sys.stderr)


def fit(config: TrainConfig, address: str | None = None):
    """Train ``config.stage``; returns Ray Train's ``Result`` (its ``checkpoint`` is the last one)."""
    from satecco.jobs.data import find_training_clips, training_dataset  # torch: not for `satecco --help`

    config = config.resolved()
    if config.output is None:
        config = replace(config, output=default_output(config))
    check_inputs(config)
    clips = find_training_clips(config)
    start_ray(address)  # before Ray Train's import: Ray reads its authentication mode on first import
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from satecco.jobs.loop import train_loop_per_worker

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config.as_dict(),
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.gpu,
                                     resources_per_worker={"CPU": config.cpus_per_worker}),
        run_config=RunConfig(name=config.name, storage_path=config.storage_path,
                             failure_config=FailureConfig(max_failures=config.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=config.keep_checkpoints)),
        datasets={"train": training_dataset(config, clips)},
    )
    return trainer.fit()


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``STAGE`` and the options of ``satecco train`` (the :data:`COMMAND_LINE` settings of
    :class:`TrainConfig`, whose model validates them with the ``--config`` file's)."""
    parser.add_argument("stage", choices=TRAINING_STAGES)
    parser.add_argument("--config", metavar="FILE",
                        help="training settings (YAML, e.g. configs/train/tiny-upscaler.yaml)")
    add_options(parser, TrainConfig, only=COMMAND_LINE)
    parser.add_argument("--address", help="Ray cluster to join (default: a local instance on loopback)")
    parser.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> int:
    given = {key: value for key, value in vars(args).items() if key in COMMAND_LINE}
    config = load_train_config(args.config, args.stage, **given)
    result = fit(config, address=args.address)
    if result.error is not None:
        print(f"satecco: training failed: {result.error}", file=sys.stderr)
        return 1
    print(f"satecco: {config.stage} done at step {result.metrics.get('step')}; checkpoints in {result.path}")
    return 0


def main(stage: str, argv: list[str]) -> int:
    """``python jobs/train_<stage>.py [options]``: ``satecco train <stage> [options]``."""
    parser = argparse.ArgumentParser(prog=f"train_{stage}.py", description=f"Train SATeCo stage {stage!r} on Ray Train.")
    add_train_arguments(parser)
    return run_command(train_command, parser.parse_args([stage, *argv]))
