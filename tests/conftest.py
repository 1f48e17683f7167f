"""Shared fixtures: the tiny preset built once, small real videos written with PyAV."""

from __future__ import annotations

import copy
import os

import pytest
import torch

# Ray reads its authentication mode when first imported: every Ray instance the tests start keeps
# token authentication on, as the engine's own local instance does.
os.environ.setdefault("RAY_AUTH_MODE", "token")

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_parts():
    """(model, diffusion config) of the tiny preset with seeded random weights, built once."""
    from satecco.build import build_model
    from satecco.presets import TINY

    return build_model(TINY, seed=0)


@pytest.fixture
def tiny(tiny_parts):
    """A private copy of the tiny model (tests may perturb it)."""
    model, _ = tiny_parts
    return copy.deepcopy(model)


def perturb_(module: torch.nn.Module, std: float = 0.05, seed: int = 1) -> torch.nn.Module:
    """Add seeded Gaussian noise to every parameter (turns zero-initialised modules into active ones)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * std)
    return module
