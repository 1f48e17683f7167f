"""Noise schedule and samplers."""

from __future__ import annotations

import pytest
import torch

from satecco.diffusion import SAMPLERS, denoise, make_scheduler, sampling_timesteps
from satecco.presets import EMBEDDED_TINY, SD21, TINY, DiffusionConfig
from satecco.schedule import base_schedule, read_base_schedule


def test_the_papers_linear_schedule_is_latent_diffusions_scaled_linear():
    """β_t = linspace(√0.00085, √0.012, 1000)²: what the paper calls linear and SD 2.1 was trained with."""
    betas = make_scheduler(DiffusionConfig()).betas.double()
    assert len(betas) == 1000
    assert betas[0].item() == pytest.approx(0.00085) and betas[-1].item() == pytest.approx(0.012)
    torch.testing.assert_close(betas.sqrt().diff(), torch.full((999,), (0.012**0.5 - 0.00085**0.5) / 999,
                                                                dtype=torch.float64), atol=1e-8, rtol=0)
    assert SD21.diffusion.beta_schedule == TINY.diffusion.beta_schedule == "scaled_linear"
    linear = make_scheduler(DiffusionConfig(beta_schedule="linear")).betas.double()  # diffusers' linear
    assert not torch.allclose(linear, betas)
    # the shipped tiny base was trained with the paper's and states it: its outputs do not move
    assert base_schedule(TINY.diffusion, read_base_schedule(EMBEDDED_TINY)[0], {}) == TINY.diffusion


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


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_no_sampling_step_lands_on_a_negative_timestep(sampler):
    """diffusers' trailing spacing gives some step counts an extra timestep of -1 (the noisiest level by
    index): such a count is refused when asked for and skipped when the count is raised for a low start
    step, so every step SATeCo takes lies in 0..start_step."""
    scheduler = make_scheduler(DiffusionConfig(sampler=sampler))
    broken = []
    for steps in range(1, 130):
        scheduler.set_timesteps(steps)
        config = DiffusionConfig(sampler=sampler, steps=steps, start_step=999)
        if bool((scheduler.timesteps < 0).any()):
            broken.append(steps)
            with pytest.raises(ValueError, match=f"steps={steps}: .*timestep of -1"):
                sampling_timesteps(config)
        else:
            assert len(sampling_timesteps(config)) == steps
    assert broken, "diffusers' trailing spacing no longer yields -1: this guard may go"
    for start_step in (1, 2, 4):  # one step, raised past the broken counts (61 for start step 1)
        kept = sampling_timesteps(DiffusionConfig(sampler=sampler, steps=8, start_step=start_step))
        assert len(kept) == 1 and 0 <= int(kept[0]) <= start_step


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


@pytest.fixture(scope="module")
def sd_like_base(tmp_path_factory):
    """A base-model folder: the tiny UNet and VAE (random) and diffusers' own DDIMScheduler with
    Stable Diffusion 2.1's schedule settings (v-prediction as in its 768 px model)."""
    from diffusers import DDIMScheduler

    from satecco.build import random_base_model

    folder = tmp_path_factory.mktemp("sd-like")
    base = random_base_model(TINY, seed=0)
    base.unet.save_pretrained(folder / "unet")
    base.vae.save_pretrained(folder / "vae")
    reference = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1,
                              set_alpha_to_one=False, clip_sample=False)
    reference.save_pretrained(folder / "scheduler")
    return folder, reference


def test_training_samples_the_base_models_schedule(sd_like_base):
    """The noise loss noises with exactly the folder's alphas_cumprod and learns its prediction type."""
    from satecco.jobs.loop import build_stage
    from satecco.training.config import TrainConfig
    from satecco.training.losses import noise_loss

    folder, reference = sd_like_base
    stage = build_stage(TrainConfig(stage="unet", base_model=str(folder)), rank=0)  # TINY's own: linear
    assert torch.equal(stage.scheduler.alphas_cumprod, reference.alphas_cumprod)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    noise_loss(lambda z, t: seen.append((z, t)) or z, latents, stage.scheduler, torch.Generator().manual_seed(1))
    replay = torch.Generator().manual_seed(1)  # the draws noise_loss makes: timesteps, then noise
    timesteps = torch.randint(0, 1000, (2,), generator=replay)
    expected = reference.add_noise(latents, torch.randn(latents.shape, generator=replay), timesteps)
    assert torch.equal(seen[0][1], timesteps) and torch.equal(seen[0][0], expected)
    assert stage.scheduler.config.prediction_type == "v_prediction"


def test_inference_samples_the_base_models_schedule(sd_like_base):
    """Sampling (the pipeline the CLI builds) noises Z and steps with the folder's schedule: the same
    alphas_cumprod, prediction type, spacing and offset, whatever the preset says."""
    from dataclasses import replace

    from satecco.build import build_pipeline
    from satecco.presets import ModelSpec

    folder, reference = sd_like_base
    pipeline = build_pipeline(ModelSpec(base_model=str(folder), steps=4, start_step=999))
    diffusion = pipeline.diffusion
    assert (diffusion.beta_schedule, diffusion.prediction_type) == ("scaled_linear", "v_prediction")
    for sampler in SAMPLERS:
        assert torch.equal(make_scheduler(replace(diffusion, sampler=sampler)).alphas_cumprod,
                           reference.alphas_cumprod), sampler
    latents, noise = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    denoise(lambda z, t: seen.append((z, int(t))) or torch.zeros_like(z), latents, noise, diffusion)
    reference.set_timesteps(4)
    assert [t for _, t in seen] == reference.timesteps.tolist() == [751, 501, 251, 1]  # leading, offset 1
    assert torch.equal(seen[0][0], reference.add_noise(latents, noise, reference.timesteps[:1]))


def test_a_schedule_that_contradicts_the_base_model_is_refused(sd_like_base, tmp_path, capsys):
    from satecco.build import build_model
    from satecco.cli import main
    from satecco.jobs.loop import build_stage
    from satecco.training.config import TrainConfig

    folder, _ = sd_like_base
    source = folder / "scheduler" / "scheduler_config.json"
    with pytest.raises(ValueError) as refused:
        build_model(TINY, base_model=folder, diffusion={"beta_schedule": "linear"})
    assert str(refused.value) == f"beta_schedule 'linear' contradicts the base model's beta_schedule " \
                                 f"'scaled_linear' ({source})"
    with pytest.raises(ValueError, match="prediction_type 'epsilon' contradicts the base model's prediction_type "
                                         "'v_prediction'"):
        build_model(TINY, base_model=folder, diffusion={"prediction_type": "epsilon", "steps": 2})
    model, agreed = build_model(TINY, base_model=folder, diffusion={"beta_schedule": "scaled_linear", "steps": 2})
    assert agreed.steps == 2
    with pytest.raises(ValueError, match="beta_schedule 'squaredcos_cap_v2' contradicts the base model's"):
        build_stage(TrainConfig(stage="vae", base_model=str(folder), beta_schedule="squaredcos_cap_v2"), rank=0)
    # the command line: one line, exit status 2, before any model is built (the embedded default's folder
    # states the paper's scaled_linear, so diffusers' linear contradicts it too)
    for flags, message in ((["--base-model", str(folder), "--prediction-type", "epsilon"],
                            "prediction_type 'epsilon' contradicts the base model's prediction_type 'v_prediction'"),
                           (["--beta-schedule", "linear"],
                            "beta_schedule 'linear' contradicts the base model's beta_schedule 'scaled_linear'")):
        assert main(["upscale", "--engine", "local", "in.mp4", "-o", str(tmp_path / "o"), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
