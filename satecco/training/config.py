"""One training run's settings: a YAML file (``configs/train/*.yaml``) plus command-line overrides."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

#: the BI and BD degradations (satecco.training.degrade)
DEGRADATIONS = ("bi", "bd")
#: stage name -> paper §3.5 (``base`` is the tiny preset's own base VAE and UNet, "stage 0")
STAGES = ("base", "upscaler", "unet", "vae", "refiner")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one stage's run (every field may appear in the YAML file).

    ``weights``: SATeCo modules to start from (the previous stage's ``output``); ``output``: where the
    final weights go (stage ``base``: a diffusers folder with ``unet/`` and ``vae/``; the others: one
    ``.safetensors`` file with every SATeCo module). ``crop`` is the HR crop in pixels, ``batch_size``
    per worker. ``base_fraction_vae``: share of stage ``base``'s steps that train the VAE before the UNet.
    """

    stage: str
    data: tuple[str, ...] = ()
    output: str | None = None
    preset: str = "tiny"
    base_model: str | None = None
    weights: str | None = None
    val: str | None = None
    frames: int = 6
    crop: int = 64
    val_crop: int = 128
    batch_size: int = 2
    lr: float = 5e-5  # paper §4.1
    weight_decay: float = 1e-2
    max_steps: int = 1000
    checkpoint_every: int = 100
    validate_every: int = 100
    log_every: int = 10
    degradation: str = "bi"
    seed: int = 0
    workers: int = 1
    gpu: bool = False
    cpus_per_worker: float = 1.0
    max_failures: int = 3
    keep_checkpoints: int = 2
    run_name: str | None = None
    storage_path: str = "outputs/train"
    tracking_uri: str | None = None
    experiment: str = "satecco"
    log_checkpoints: bool = True
    base_fraction_vae: float = 0.5
    kl_weight: float = 1e-6

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"unknown training stage {self.stage!r}; choose one of {STAGES}")
        if self.degradation not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.degradation!r}; choose one of {DEGRADATIONS}")
        for name in ("frames", "crop", "batch_size", "max_steps", "checkpoint_every", "validate_every",
                     "log_every", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.crop % 4:
            raise ValueError(f"crop={self.crop} must be a multiple of 4 (the upscaling factor)")
        if self.stage == "base" and self.preset != "tiny":
            raise ValueError("stage 'base' trains the tiny preset's own VAE and UNet only; "
                             f"preset {self.preset!r} starts from a pretrained --base-model")

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
        return replace(self, tracking_uri=tracking, data=data, **absolute)

    def as_dict(self) -> dict:
        return asdict(self)


def load_train_config(path: str | None, stage: str, **overrides) -> TrainConfig:
    """``TrainConfig`` from the YAML file ``path`` (optional), with non-``None`` ``overrides`` on top."""
    values: dict = {}
    if path:
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot read training config ({error})") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of setting names to values")
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown training settings {unknown}")
        if values.get("stage", stage) != stage:
            raise ValueError(f"{path}: is a config for stage {values['stage']!r}, not {stage!r}")
    values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    values["stage"] = stage
    if isinstance(values.get("data"), str):
        values["data"] = [values["data"]]
    values["data"] = tuple(values.get("data", ()))
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path or 'training config'}: {error}") from error
