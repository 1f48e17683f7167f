"""The Ray pipeline's config: which stages share an actor pool, pool sizes and resources
(``configs/pipeline/*.yaml``), validated like every other option (:mod:`satecco.options`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import NonNegativeFloat, PositiveInt, model_validator
from pydantic.dataclasses import dataclass

from satecco.options import validate
from satecco.segments import PARTS

#: The paper's inference stages in order, and the pipeline part (:data:`~satecco.segments.PARTS`) each
#: belongs to.
STAGE_PARTS = {"upscale": "encode", "encode": "encode", "denoise": "denoise", "decode": "decode",
               "refine": "decode"}


@dataclass(frozen=True)
class GroupConfig:
    """Stages that run in one actor pool.

    ``min_actors``/``max_actors`` size ``ActorPoolStrategy`` (never above the run's segment count);
    ``num_gpus`` and ``num_cpus`` are per actor (fractions let several actors share a device);
    ``batch_size`` counts segments per call. ``threads``: torch's threads per actor, ``"all"`` for the
    node's cores; by default Ray's ``OMP_NUM_THREADS`` (``num_cpus``). More threads than ``num_cpus``
    let actors share cores: one busy actor gets them all, two busy ones split them (stage actors wait
    passively, ``OMP_WAIT_POLICY=PASSIVE``, so sharing does not spin).
    """

    stages: tuple[Literal[tuple(STAGE_PARTS)], ...]
    min_actors: PositiveInt = 1
    max_actors: PositiveInt = 1
    num_gpus: NonNegativeFloat = 0.0
    num_cpus: NonNegativeFloat = 1.0
    batch_size: PositiveInt = 1
    threads: int | str | None = None

    @model_validator(mode="after")
    def _sizes(self) -> GroupConfig:
        if self.min_actors > self.max_actors:
            raise ValueError(f"group {self.name}: need 1 <= min_actors <= max_actors, got "
                             f"{self.min_actors}..{self.max_actors}")
        if not (self.threads is None or self.threads == "all" or (isinstance(self.threads, int) and self.threads >= 1)):
            raise ValueError(f"group {self.name}: threads must be a positive integer or 'all', got {self.threads!r}")
        return self

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(STAGE_PARTS[s] for s in self.stages))

    @property
    def name(self) -> str:
        return "+".join(self.stages)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole Ray Data graph: decode tasks -> stage groups -> segment writers."""

    groups: tuple[GroupConfig, ...] = (GroupConfig(stages=tuple(STAGE_PARTS)),)
    windows_per_segment: PositiveInt = 3
    decode_cpus: NonNegativeFloat = 0.5
    write_cpus: NonNegativeFloat = 0.5

    @model_validator(mode="after")
    def _whole_pipeline(self) -> PipelineConfig:
        order = [stage for group in self.groups for stage in group.stages]
        if order != list(STAGE_PARTS):
            raise ValueError(f"stage groups must list {list(STAGE_PARTS)} once each, in order; got {order}")
        parts = [part for group in self.groups for part in group.parts]
        if parts != list(dict.fromkeys(parts)) or list(dict.fromkeys(parts)) != list(PARTS):
            raise ValueError(
                f"stage groups {[list(g.stages) for g in self.groups]} split a pipeline part: upscale and "
                "encode must share an actor, and so must decode and refine (splitting them would ship "
                "full-resolution frames or VAE features between actors); cut only after encode or denoise")
        return self


def default_pipeline_config(resources: dict[str, float]) -> PipelineConfig:
    """The config used without a pipeline YAML, from the cluster's resources (``ray.cluster_resources()``).

    With GPUs: every stage in one actor per GPU (nothing but a segment's frames crosses the object
    store). Without: two fused actors that may each use every core of their node (see
    ``configs/pipeline/cpu.yaml``).
    """
    gpus = int(resources.get("GPU", 0))
    if gpus:
        group = GroupConfig(tuple(STAGE_PARTS), min_actors=1, max_actors=gpus, num_gpus=1, num_cpus=1)
        return PipelineConfig(groups=(group,), decode_cpus=0.5, write_cpus=1)
    group = GroupConfig(tuple(STAGE_PARTS), min_actors=2, max_actors=2, num_cpus=1, threads="all")
    return PipelineConfig(groups=(group,), decode_cpus=0.25, write_cpus=0.25)


def load_pipeline_config(path: str | Path | None) -> PipelineConfig | None:
    """Read a pipeline YAML (see ``configs/pipeline/*.yaml``); ``None`` for no file, which lets the
    engine choose :func:`default_pipeline_config` once it sees the cluster."""
    if path is None:
        return None
    return validate(PipelineConfig, {}, path, what="pipeline config")
