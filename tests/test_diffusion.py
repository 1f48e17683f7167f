"""Noise schedule and samplers."""

from __future__ import annotations

import pytest
import torch

from satecco.diffusion import SAMPLERS, denoise, make_scheduler, sampling_timesteps
from satecco.presets import DiffusionConfig


def test_linear_betas_are_the_papers():
    scheduler = make_scheduler(DiffusionConfig())
    betas = scheduler.betas.double()
    assert len(betas) == 1000
    assert betas[0].item() == pytest.approx(0.00085)
    assert betas[-1].item() == pytest.approx(0.012)
    torch.testing.assert_close(betas.diff(), torch.full((999,), (0.012 - 0.00085) / 999, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    scaled = make_scheduler(DiffusionConfig(beta_schedule="scaled_linear")).betas.double()
    assert scaled[0].item() == pytest.approx(0.00085) and scaled[-1].item() == pytest.approx(0.012)
    assert not torch.allclose(scaled, betas)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_recover_clean_latents_from_an_oracle(sampler):
    """With a model that predicts exactly the noise added, every sampler returns the clean latents."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    config = DiffusionConfig(sampler=sampler, steps=8, start_step=700)
    visited = []

    def oracle(z, t):
        visited.append(int(t))
        return noise

    out = denoise(oracle, latents, noise, config)
    torch.testing.assert_close(out, latents, atol=1e-4, rtol=1e-4)
    assert visited == [int(t) for t in sampling_timesteps(config)]
    assert visited[0] == 624 and len(visited) == 5  # trailing spacing: 999, 874, 749 | 624, ... 124


def test_start_step_and_steps_shape_the_schedule():
    full = sampling_timesteps(DiffusionConfig(steps=50, start_step=999))
    assert len(full) == 50 and int(full[0]) == 999
    half = sampling_timesteps(DiffusionConfig(steps=50, start_step=500))
    assert int(half[0]) <= 500 and len(half) == 25
    with pytest.raises(ValueError, match="start_step"):
        sampling_timesteps(DiffusionConfig(start_step=1000))
    with pytest.raises(ValueError, match="sampler"):
        make_scheduler(DiffusionConfig(sampler="plms"))


def test_denoise_is_a_pure_function_of_its_noise():
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    noise_a, noise_b = torch.randn(2, 1, 4, 8, 8, generator=generator)
    weight = torch.randn(4, 4, generator=generator) * 0.1

    def model(z, t):  # an arbitrary smooth network stand-in: a fixed linear map of z
        return torch.einsum("dc,nchw->ndhw", weight, z)

    config = DiffusionConfig(sampler="dpmpp", steps=5)
    first = denoise(model, latents, noise_a, config)
    torch.testing.assert_close(denoise(model, latents, noise_a, config), first, atol=0, rtol=0)
    assert not torch.allclose(denoise(model, latents, noise_b, config), first)
