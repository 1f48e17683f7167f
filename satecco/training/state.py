"""Optimiser state in safetensors (tensors) + metadata (hyper-parameters), so a checkpoint never holds
a pickle. ``torch.save`` of ``optimizer.state_dict()`` would pickle it; this keeps the tensors in
safetensors and the plain values (``param_groups``, non-tensor entries) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
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
