"""Optimiser and weight-average state in safetensors (tensors) + metadata (hyper-parameters), so a
checkpoint never holds a pickle. ``torch.save`` of ``optimizer.state_dict()`` would pickle it; this keeps
the tensors in safetensors and the plain values (``param_groups``, non-tensor entries) as JSON.

The moving average of the weights is diffusers' ``EMAModel`` over the trained parameters only (the
frozen UNet and VAE are not copied)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def save_optimizer(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    """Write ``optimizer.state_dict()`` to ``path`` (safetensors)."""
    state = optimizer.state_dict()
    tensors, plain = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    metadata = {"param_groups": json.dumps(state["param_groups"]), "plain": json.dumps(plain)}
    save_file(tensors, str(path), metadata=metadata)


def load_optimizer(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore ``optimizer`` from a file written by :func:`save_optimizer`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entries in json.loads(metadata["plain"]).items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})


def save_ema(path: str | Path, ema: EMAModel) -> None:
    """Write the averaged weights of ``ema`` (in the order of its parameters) and its step to ``path``."""
    state = ema.state_dict()
    tensors = {str(i): p.detach().cpu().contiguous() for i, p in enumerate(state.pop("shadow_params"))}
    save_file(tensors, str(path), metadata={"state": json.dumps(state)})


def load_ema(path: str | Path, ema: EMAModel) -> None:
    """Restore ``ema`` from a file written by :func:`save_ema`, onto the device of its averages."""
    with safe_open(str(path), framework="pt") as handle:
        state = json.loads(handle.metadata()["state"])
        if len(handle.keys()) != len(ema.shadow_params):
            raise ValueError(f"{path}: {len(handle.keys())} averaged tensors for {len(ema.shadow_params)} "
                             "trained parameters")
        averages = [handle.get_tensor(str(i)).to(current.device) for i, current in enumerate(ema.shadow_params)]
    ema.load_state_dict({**state, "shadow_params": averages})


@contextmanager
def averaged_weights(ema: EMAModel | None, parameters: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """Inside the block ``parameters`` hold ``ema``'s averages (unchanged when ``ema`` is None); the
    trained values come back after it."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)
