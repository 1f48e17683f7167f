"""One training run's settings: a YAML file (``configs/train/*.yaml``) plus command-line overrides,
validated by the same mechanism as every other option (:mod:`satecco.options`)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from pydantic.dataclasses import dataclass

from satecco.cluster import check_lasting
from satecco.options import option, validate
from satecco.presets import ADAPTED, BETA_SCHEDULES, PREDICTION_TYPES

#: the BI and BD degradations (satecco.training.degrade)
DEGRADATIONS = ("bi", "bd")
#: stage name -> paper §3.5 (``base`` is the tiny preset's own base VAE and UNet, "stage 0")
TRAINING_STAGES = ("base", "upscaler", "unet", "vae", "refiner")
#: how the learning rate moves over a run (TrainConfig.learning_rate)
LR_SCHEDULES = ("constant", "cosine")
#: what stage ``vae`` decodes (satecco.training.stages.VAEStage)
VAE_LATENTS = ("hr", "sampled")
#: what stage ``unet`` noises (satecco.training.stages.UNetStage)
UNET_LATENTS = ("hr", "upscaled")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one stage's run (every field may appear in the YAML file).

    ``weights``: SATeCo modules to start from (the previous stage's ``output``); ``output``: where the
    final weights go (stage ``base``: a diffusers folder with ``unet/`` and ``vae/``; the others: one
    ``.safetensors`` file with every SATeCo module). ``crop`` is the HR crop in pixels, ``batch_size``
    per worker. ``base_fraction_vae``: share of stage ``base``'s steps that train the VAE before the UNet.
    """

    stage: Literal[TRAINING_STAGES]
    data: tuple[str, ...] = option((), "REDS or Vimeo-90K roots, video files, folders of videos or frame folders",
                                   metavar="PATH")
    output: str | None = option(None, "final weights (.safetensors; stage base: a folder)", metavar="PATH")
    preset: str = "tiny"
    base_model: str | None = option(None, "frozen base UNet and VAE (diffusers folder)", metavar="DIR")
    weights: str | None = option(None, "SATeCo modules to start from (the previous stage's output)",
                                 metavar="FILE")
    val: str | None = option(None, "held-out clip for the validation PSNR", metavar="VIDEO")
    beta_schedule: Literal[BETA_SCHEDULES] | None = option(
        None, "noise schedule (default: the base model's scheduler/, else the preset's; stage base writes it "
              "to its folder); one that contradicts --base-model is refused")
    prediction_type: Literal[PREDICTION_TYPES] | None = option(
        None, "what the UNet predicts (default: the base model's scheduler/, else the preset's)")
    frames: PositiveInt = 6
    crop: PositiveInt = 64
    val_crop: PositiveInt = 128
    batch_size: PositiveInt = 2
    lr: PositiveFloat = 5e-5  # paper §4.1
    weight_decay: float = 1e-2
    lr_schedule: Literal[LR_SCHEDULES] = option(
        "constant", "learning rate over the steps: constant, or cosine (from lr down to 0 at max_steps; stage base: "
                    "one cosine per phase, so that the VAE settles before the UNet trains on its latents)")
    ema_decay: float = option(
        0.0, "keep an exponential moving average of the trained weights with this decay (e.g. 0.999): "
             "validation and the final weights use it (0: off)", ge=0.0, lt=1.0)
    max_steps: PositiveInt = option(1000, "optimiser steps in total (a resumed run counts on)")
    checkpoint_every: PositiveInt = 100
    validate_every: PositiveInt = 100
    log_every: PositiveInt = 10
    degradation: Literal[DEGRADATIONS] = "bi"
    seed: int = 0
    workers: PositiveInt = option(1, "Ray Train workers")
    gpu: bool = option(False, "one GPU per worker")
    precision: Literal["fp32", "bf16"] = option(
        "fp32", "bf16: forward passes autocast to bfloat16 (mixed precision: the trained weights, their gradients "
                "and AdamW's state stay fp32)")
    gradient_checkpointing: bool = option(
        False, "stages unet and vae: recompute the frozen decoder's blocks and their adapters in the backward "
               "pass instead of keeping their activations (less memory, about one more forward pass)")
    cpus_per_worker: PositiveFloat = 1.0
    max_failures: NonNegativeInt = 3
    keep_checkpoints: PositiveInt = 2
    run_name: str | None = option(None, "Ray Train run name and MLflow run name (default PRESET-STAGE)")
    storage_path: str = option("outputs/train", "where Ray Train keeps checkpoints", metavar="DIR")
    tracking_uri: str | None = option(None, "MLflow tracking URI (default $MLFLOW_TRACKING_URI, else "
                                            "sqlite:///mlflow.db)")
    experiment: str = "satecco"
    registered_model: str | None = option(None, "register the final model in MLflow's model registry under NAME "
                                                "(stages upscaler to refiner; a new version per run)", metavar="NAME")
    log_checkpoints: bool = True
    base_fraction_vae: float = option(0.5, ge=0.0, le=1.0)
    max_timestep: NonNegativeInt | None = None  # stages base and unet: the noise loss's t up to this (default: start step)
    kl_weight: float = 1e-6
    vae_latents: Literal[VAE_LATENTS] = option(
        "hr", "stage vae: decode the HR frames' latents (paper) or the Z_0 that stages 1-2 sample from X_u "
              "(as at inference; StableSR's CFW)")
    no_sfa: list[Literal[ADAPTED]] | None = option(
        None, "ablation: train with SFA off in the UNet or VAE decoder (repeat for both), as a retrained row of "
              "the paper's Table 2; upscale with the same --no-sfa", action="append", metavar="{unet,vae}")
    no_tfa: list[Literal[ADAPTED]] | None = option(
        None, "ablation: train with TFA off in the UNet or VAE decoder (repeat for both); upscale with the same "
              "--no-tfa", action="append", metavar="{unet,vae}")
    unet_latents: Literal[UNET_LATENTS] = option(
        "hr", "stage unet: the noise loss on the HR frames' latents (paper), or the latents of X_u noised at the "
              "sampler's own timesteps, learning the step that lands on the HR latents (as at inference)")

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.crop % 4:
            raise ValueError(f"crop={self.crop} must be a multiple of 4 (the upscaling factor)")
        if self.stage == "base" and self.preset != "tiny":
            raise ValueError("stage 'base' trains the tiny preset's own VAE and UNet only; "
                             f"preset {self.preset!r} starts from a pretrained --base-model")
        return self

    @property
    def base_vae_steps(self) -> int:
        """Stage ``base``: the steps that train the VAE, before the UNet's."""
        return round(self.max_steps * self.base_fraction_vae)

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based). ``cosine``: half a cosine from ``lr`` to 0
        over each phase (stage ``base``: the VAE's steps, then the UNet's; the other stages: the whole run).
        A function of the step alone, so a resumed run picks up the schedule where it stopped. (Written here
        rather than with diffusers' ``get_cosine_schedule_with_warmup``: that is a stateful ``LambdaLR`` whose
        restarts come in equal cycles, not at stage ``base``'s phase boundary.)"""
        if self.lr_schedule == "constant":
            return self.lr
        start, end = 0, self.max_steps
        if self.stage == "base":
            start, end = (self.base_vae_steps, end) if step >= self.base_vae_steps else (0, self.base_vae_steps)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(step - start, end - start) / max(end - start, 1)))

    def diffusion_overrides(self) -> dict:
        """The :class:`~satecco.presets.DiffusionConfig` fields this run sets (``None``: not set)."""
        return dict(beta_schedule=self.beta_schedule, prediction_type=self.prediction_type)

    @property
    def name(self) -> str:
        return self.run_name or f"{self.preset}-{self.stage}"

    def resolved(self) -> TrainConfig:
        """Paths made absolute and the MLflow URI settled on the driver (workers run in other folders)."""
        tracking = (self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                    or f"sqlite:///{Path('mlflow.db').resolve()}")
        absolute = {name: str(Path(value).resolve()) if value and "://" not in value else value
                    for name, value in (("output", self.output), ("base_model", self.base_model),
                                        ("weights", self.weights), ("val", self.val),
                                        ("storage_path", self.storage_path))}
        data = tuple(str(Path(d).resolve()) if "://" not in d else d for d in self.data)
        for flag, value in (("--tracking-uri", tracking), ("--storage-path", absolute["storage_path"]),
                            ("--output", absolute["output"])):
            check_lasting(value, flag)  # a Ray job's working copy vanishes with the job
        return replace(self, tracking_uri=tracking, data=data, **absolute)

    def as_dict(self) -> dict:
        return asdict(self)


#: The settings ``satecco train`` also takes on its command line: those with a help text.
COMMAND_LINE = tuple(name for name, field in TrainConfig.__pydantic_fields__.items() if field.description)


def load_train_config(path: str | None, stage: str, **overrides) -> TrainConfig:
    """``TrainConfig`` from the YAML file ``path`` (optional), with the ``overrides`` the command line gave
    on top (``None`` values are not given). The file may name its stage; it must be ``stage``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if isinstance(given.get("data"), str):
        given["data"] = [given["data"]]
    if path:
        from satecco.config_files import read_yaml_mapping

        named = read_yaml_mapping(path, "training config").get("stage", stage)
        if named != stage:
            raise ValueError(f"{path}: is a config for stage {named!r}, not {stage!r}")
    return validate(TrainConfig, {**given, "stage": stage}, path, what="training config")
