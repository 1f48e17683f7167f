"""The noise schedule a frozen base model was trained with, read from its ``scheduler/`` folder.

Torch-free: the command line checks a run's schedule against its base model before any cluster or
model work, and :func:`satecco.build.build_model` settles it the same way for training and inference.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from satecco.presets import BETA_SCHEDULES, PREDICTION_TYPES, SCHEDULE_FIELDS, DiffusionConfig


def read_base_schedule(folder: str | Path) -> tuple[dict[str, Any], Path]:
    """The schedule fields that ``folder/scheduler/scheduler_config.json`` states (none without the file),
    and the file's path. Values outside the samplers' choices are a ``ValueError`` naming the file."""
    path = Path(folder) / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return {}, path
    try:
        stated = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable scheduler config ({error})") from None
    schedule = {name: stated[name] for name in SCHEDULE_FIELDS if name in stated}
    if schedule.get("trained_betas") is not None:
        schedule["trained_betas"] = tuple(schedule["trained_betas"])
    for name, choices in (("beta_schedule", BETA_SCHEDULES), ("prediction_type", PREDICTION_TYPES)):
        if name in schedule and schedule[name] not in choices:
            raise ValueError(f"{path}: {name} {schedule[name]!r} is not one of {list(choices)}")
    return schedule, path


def base_schedule(default: DiffusionConfig, base: dict[str, Any], given: dict[str, Any],
                  source: str | Path = "the base model") -> DiffusionConfig:
    """``default`` (the preset's), with the fields the base model states (``base``, from
    :func:`read_base_schedule`), with the fields the user ``given`` on top (``None``: not given).

    The frozen UNet was trained with its base model's schedule: a given value that contradicts a stated
    one is refused (``ValueError`` naming both values and ``source``), not silently preferred.
    """
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in given.items():
        if name in base and base[name] != value:
            raise ValueError(f"{name} {value!r} contradicts the base model's {name} {base[name]!r} ({source})")
    return replace(default, **{**base, **given})
