"""The sd21 preset's real architecture (Stable Diffusion 2.1-base UNet and VAE, random weights) on the CPU:
what must hold before a GPU ever runs it (issue 16)."""

from __future__ import annotations

import pytest
import torch

from satecco.training.stages import STAGE_CLASSES


@pytest.fixture(scope="module")
def sd21_parts():
    """(model, diffusion) of the sd21 preset with seeded random weights, built once (about 15 s, 6.5 GB)."""
    from satecco.build import build_model
    from satecco.presets import SD21

    return build_model(SD21, seed=0)


def test_sd21_stage_2_and_3_take_a_step_with_gradient_checkpointing(sd21_parts):
    """One stage-2 and one stage-3 optimiser step of the sd21 architecture at a 64-pixel crop with
    checkpointing on: the backward pass recomputes every guided decoder block's adapter under its guidance,
    every trained parameter gets a finite gradient and the SFA convolutions move. (SGD: AdamW's state for
    stage 2's 743 M adapter parameters, 11 GB, is what docs/training.md budgets on a GPU, not here.)"""
    from satecco.jobs.loop import train_step

    model, diffusion = sd21_parts
    model.enable_gradient_checkpointing()
    generator = torch.Generator().manual_seed(0)
    batch = {"hr": torch.randint(0, 256, (1, 2, 64, 64, 3), generator=generator, dtype=torch.uint8),
             "lr": torch.randint(0, 256, (1, 2, 16, 16, 3), generator=generator, dtype=torch.uint8)}
    for name in ("unet", "vae"):
        stage = STAGE_CLASSES[name](model, diffusion, seed=0)
        adapters = getattr(model, f"{name}_adapters")
        recomputed = []
        adapters.adapt = lambda index, *args, _adapt=adapters.adapt, _log=recomputed: _log.append(index) or _adapt(index, *args)
        sfa_before = [sfa.to_shift.weight.detach().clone() for sfa in adapters.sfa]
        trained = [p for p in stage.parameters() if p.requires_grad]
        forward_calls = len(adapters.sfa)
        loss, _ = train_step(stage, stage, torch.optim.SGD(trained, lr=1.0), batch, step=0)
        del adapters.adapt
        assert torch.isfinite(loss)
        assert sorted(recomputed[forward_calls:]) == list(range(len(adapters.sfa))), name
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained), name
        for before, sfa in zip(sfa_before, adapters.sfa, strict=True):
            assert not torch.equal(before, sfa.to_shift.weight), name
        for p in trained:
            p.grad = None
