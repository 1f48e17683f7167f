"""Pipeline layout: which stages share an actor, pool sizes and resources, read from ``configs/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The paper's stages in order, and the pipeline part (``satecco.pipeline.PARTS``) each belongs to.
STAGES = {"upscale": "encode", "encode": "encode", "denoise": "denoise", "decode": "decode", "refine": "decode"}
#: The parts in order. Spelled out here so that the driver never imports torch (``satecco.pipeline`` does).
PARTS = tuple(dict.fromkeys(STAGES.values()))


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

    stages: tuple[str, ...]
    min_actors: int = 1
    max_actors: int = 1
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    batch_size: int = 1
    threads: int | str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(STAGES[s] for s in self.stages))

    @property
    def name(self) -> str:
        return "+".join(self.stages)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole Ray Data graph: decode tasks -> stage groups -> segment writers."""

    groups: tuple[GroupConfig, ...] = (GroupConfig(stages=tuple(STAGES)),)
    windows_per_segment: int = 3
    decode_cpus: float = 0.5
    write_cpus: float = 0.5

    def __post_init__(self):
        order = [stage for group in self.groups for stage in group.stages]
        if order != list(STAGES):
            raise ValueError(f"stage groups must list {list(STAGES)} once each, in order; got {order}")
        parts = [part for group in self.groups for part in group.parts]
        if parts != list(dict.fromkeys(parts)) or list(dict.fromkeys(parts)) != list(PARTS):
            raise ValueError(
                f"stage groups {[list(g.stages) for g in self.groups]} split a pipeline part: upscale and "
                "encode must share an actor, and so must decode and refine (splitting them would ship "
                "full-resolution frames or VAE features between actors); cut only after encode or denoise")
        for group in self.groups:
            if not 1 <= group.min_actors <= group.max_actors:
                raise ValueError(f"group {group.name}: need 1 <= min_actors <= max_actors, got "
                                 f"{group.min_actors}..{group.max_actors}")
            if not (group.threads is None or group.threads == "all"
                    or (isinstance(group.threads, int) and group.threads >= 1)):
                raise ValueError(f"group {group.name}: threads must be a positive integer or 'all', "
                                 f"got {group.threads!r}")
        if self.windows_per_segment < 1:
            raise ValueError(f"windows_per_segment must be at least 1, got {self.windows_per_segment}")


def default_pipeline_config(resources: dict[str, float]) -> PipelineConfig:
    """The layout used without a pipeline YAML, from the cluster's resources (``ray.cluster_resources()``).

    With GPUs: every stage in one actor per GPU (nothing but a segment's frames crosses the object
    store). Without: two fused actors that may each use every core of their node (see
    ``configs/pipeline/cpu.yaml``).
    """
    gpus = int(resources.get("GPU", 0))
    if gpus:
        group = GroupConfig(tuple(STAGES), min_actors=1, max_actors=gpus, num_gpus=1, num_cpus=1)
        return PipelineConfig(groups=(group,), decode_cpus=0.5, write_cpus=1)
    group = GroupConfig(tuple(STAGES), min_actors=2, max_actors=2, num_cpus=1, threads="all")
    return PipelineConfig(groups=(group,), decode_cpus=0.25, write_cpus=0.25)


def load_pipeline_config(path: str | Path | None) -> PipelineConfig | None:
    """Read a pipeline YAML (see ``configs/pipeline/*.yaml``); ``None`` for no file, which lets the
    engine choose :func:`default_pipeline_config` once it sees the cluster."""
    if path is None:
        return None
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read pipeline config ({error})") from error
    try:
        groups = tuple(GroupConfig(**{**g, "stages": tuple(g["stages"])}) for g in raw.pop("groups"))
        return PipelineConfig(groups=groups, **raw)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
