"""Training pieces without Ray: degradations, data layouts, losses, optimiser state, stages, config."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from media import moving_frames, random_frames, textured_frames, write

from satecco.errors import VideoError
from satecco.metrics.imresize import imresize
from satecco.training.config import load_train_config
from satecco.training.data import (
    ClipCache,
    find_clips,
    make_sample,
    read_window,
    validation_pair,
    window_starts,
)
from satecco.training.degrade import degrade
from satecco.training.losses import charbonnier, noise_loss
from satecco.training.stages import STAGE_CLASSES, BaseStage
from satecco.training.state import averaged_weights, load_ema, load_optimizer, save_ema, save_optimizer


def test_bi_is_matlab_bicubic_per_frame():
    hr = np.stack(random_frames(3, 32, 48))
    lr = degrade(hr, 4, "bi")
    assert lr.shape == (3, 8, 12, 3)
    np.testing.assert_array_equal(lr[1], imresize(hr[1], scale=0.25))


def test_bd_blurs_then_keeps_every_fourth_pixel():
    # A symmetric blur leaves a linear ramp unchanged away from the borders; BD samples it at 4i, 4j.
    y, x = np.mgrid[0:64, 0:64]
    ramp = np.repeat((x + 2 * y)[None, ..., None], 3, axis=-1).astype(np.uint8)
    lr = degrade(ramp, 4, "bd").astype(int)
    np.testing.assert_array_equal(lr[0, 2:-2, 2:-2, 0], (x + 2 * y)[8:-8:4, 8:-8:4])
    impulse = np.zeros((1, 32, 32, 3), np.uint8)
    impulse[0, 16, 16] = 255
    assert degrade(impulse, 4, "bd")[0, 4, 4, 0] < 255 * 0.1  # the peak is spread by sigma = 1.6


def test_degrade_refuses_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiples of 4"):
        degrade(np.zeros((2, 30, 32, 3), np.uint8))


def test_reds_layout_with_dataset_lr_gives_aligned_crops(tmp_path):
    hr = np.stack(random_frames(8, 64, 64, seed=3))
    for clip in ("000", "001"):
        write(tmp_path / "train_sharp" / clip, list(hr), "png")
        write(tmp_path / "train_sharp_bicubic" / "X4" / clip, list(hr[:, ::4, ::4]), "png")
    clips = find_clips(tmp_path)
    assert [c.frames for c in clips] == [8, 8] and all(c.lr for c in clips)
    assert len(window_starts(clips, 6)) == 2 * 3
    sample = make_sample(clips[1], 2, 6, 32, np.random.default_rng(0), augment=False)
    assert sample["hr"].shape == (6, 32, 32, 3) and sample["lr"].shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(sample["lr"], sample["hr"][:, ::4, ::4])  # the same region of the frame


def test_vimeo_layout_reads_its_list_file(tmp_path):
    for name in ("00001/0001", "00001/0002"):
        write(tmp_path / "sequences" / name, random_frames(7, 32, 32), "png")
    with pytest.raises(ValueError, match="sep_trainlist.txt"):
        find_clips(tmp_path)
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00001/0002\n")
    clips = find_clips(tmp_path)
    assert [c.frames for c in clips] == [7, 7] and clips[0].lr is None
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00002/0001\n")
    with pytest.raises(ValueError, match="00002/0001"):
        find_clips(tmp_path)


def test_samples_are_flipped_and_reversed_versions_of_the_crop(tmp_path):
    video = write(tmp_path / "clip.mkv", random_frames(6, 32, 32, seed=5), "ffv1")
    clip = find_clips(video)[0]
    plain = make_sample(clip, 0, 6, 32, np.random.default_rng(0), augment=False)["hr"]
    variants = {}
    for t in (False, True):
        for v in (False, True):
            for h in (False, True):
                x = plain[::-1] if t else plain
                x = x[:, ::-1] if v else x
                variants[np.ascontiguousarray(x[:, :, ::-1] if h else x).tobytes()] = (t, v, h)
    seen = set()
    for seed in range(40):
        sample = make_sample(clip, 0, 6, 32, np.random.default_rng(seed))
        seen.add(variants[sample["hr"].tobytes()])  # KeyError if a sample is anything else
        np.testing.assert_array_equal(sample["lr"], degrade(sample["hr"]))
    assert len(seen) == 8


def test_clip_cache_gives_the_windows_a_seek_gives_and_keeps_to_its_budget(tmp_path):
    videos = [write(tmp_path / f"{name}.mkv", random_frames(9, 16, 16, seed=i), "ffv1")
              for i, name in enumerate(("a", "b"))]
    one_clip = 9 * 16 * 16 * 3
    cache = ClipCache(budget=one_clip)
    for video in videos:  # a second clip pushes the first one out
        for start in (0, 3):
            np.testing.assert_array_equal(cache(str(video), start, 6), read_window(str(video), start, 6))
    assert list(cache._clips) == [str(videos[1])]
    with pytest.raises(VideoError, match="b.mkv.*expected 6 frames from frame 5, read 4"):
        cache(str(videos[1]), 5, 6)
    small = ClipCache(budget=one_clip - 1)  # too large to keep: read window by window
    np.testing.assert_array_equal(small(str(videos[0]), 2, 6), read_window(str(videos[0]), 2, 6))
    assert not small._clips


def test_frames_smaller_than_the_crop_name_the_file(tmp_path):
    video = write(tmp_path / "small.mkv", random_frames(6, 32, 32), "ffv1")
    with pytest.raises(VideoError, match="small.mkv.*smaller than the 64px"):
        make_sample(find_clips(video)[0], 0, 6, 64, np.random.default_rng(0))


def test_validation_pair_is_a_centre_crop(tmp_path):
    frames = moving_frames(6, 48, 64)
    video = write(tmp_path / "val.mkv", frames, "ffv1")
    pair = validation_pair(str(video), 4, 32)
    assert pair["hr"].shape == (4, 32, 32, 3) and pair["lr"].shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(pair["hr"][0], frames[0][8:40, 16:48])


def test_charbonnier_known_value():
    x, y = torch.zeros(4), torch.full((4,), 0.3)
    assert charbonnier(x, y, eps=0.4).item() == pytest.approx(0.5)


def test_noise_loss_is_zero_for_the_true_noise_and_uses_one_level_per_clip():
    from satecco.diffusion import make_scheduler
    from satecco.presets import DiffusionConfig

    scheduler = make_scheduler(DiffusionConfig())
    latents = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    levels = []

    def oracle(noisy, t):  # recovers eps from z_t = sqrt(a) z_0 + sqrt(1 - a) eps
        levels.append(t.clone())
        alpha = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (noisy - alpha.sqrt() * latents) / (1 - alpha).sqrt()

    loss = noise_loss(oracle, latents, scheduler, torch.Generator().manual_seed(1), frames=3)
    assert loss.item() < 1e-8
    t = levels[0]
    assert (t[:3] == t[0]).all() and (t[3:] == t[3]).all()
    blind = noise_loss(lambda z, t: torch.zeros_like(z), latents, scheduler, torch.Generator().manual_seed(1))
    assert blind.item() == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_landing_loss_trains_the_samplers_step_from_the_upscaled_latents_onto_the_hr_ones(prediction_type):
    """A UNet with zero landing loss makes the tiny preset's sampler (one DDIM step from its start step)
    turn the latents it starts from into the target latents; one that returns its input's noise does not."""
    from dataclasses import replace

    from satecco.diffusion import denoise, make_scheduler, sampling_timesteps
    from satecco.presets import TINY
    from satecco.training.losses import diffusion_target, landing_loss

    diffusion = replace(TINY.diffusion, prediction_type=prediction_type)
    scheduler, timesteps = make_scheduler(diffusion), sampling_timesteps(diffusion)
    generator = torch.Generator().manual_seed(0)
    start, target = torch.randn(6, 4, 8, 8, generator=generator), torch.randn(6, 4, 8, 8, generator=generator)
    seen = []

    def lands(z, t):  # the prediction under which z_t is target noised
        seen.append(t.clone())
        alpha = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        return diffusion_target(target, (z - alpha.sqrt() * target) / (1 - alpha).sqrt(), t, scheduler)

    assert landing_loss(lands, start, target, scheduler, timesteps, generator, frames=3).item() < 1e-10
    assert set(seen[0].tolist()) <= set(timesteps.tolist())
    noise = torch.randn(start.shape, generator=generator)
    torch.testing.assert_close(denoise(lands, start, noise, diffusion), target, rtol=0, atol=1e-4)

    def keeps(z, t):  # the noise-loss optimum for a UNet that trusts z_t: start's own noise
        return diffusion_target(start, noise, t, scheduler)

    assert landing_loss(keeps, start, target, scheduler, timesteps, torch.Generator().manual_seed(1)).item() > 1
    torch.testing.assert_close(denoise(keeps, start, noise, diffusion), start, rtol=0, atol=1e-4)


@pytest.mark.parametrize("latents", ["hr", "upscaled"])
def test_unet_stage_noises_the_hr_latents_or_those_of_x_u(latents, tiny_parts):
    """Stage 2 noises the HR latents to any t up to max_timestep (the paper's noise loss) or, with
    ``latents="upscaled"``, the latents of X_u to the sampler's own timesteps, as inference does."""
    from satecco.diffusion import sampling_timesteps

    model, diffusion = tiny_parts
    stage = STAGE_CLASSES["unet"](copy.deepcopy(model), diffusion, seed=3, latents=latents, max_timestep=124)
    hr = torch.rand(1, 6, 3, 32, 32) * 2 - 1
    lr = torch.nn.functional.interpolate(hr[0], scale_factor=0.25, mode="area")[None]
    seen = []
    stage.model.unet.register_forward_pre_hook(lambda m, args: seen.append((args[0], args[1])))
    stage(hr, lr)
    (noisy, t), = seen
    replay = torch.Generator().manual_seed(3)  # the stage's draws: the clip's timestep, then the noise
    if latents == "hr":
        start, level = stage.model.encode(hr)[0], torch.randint(0, 125, (1,), generator=replay)
    else:
        timesteps = sampling_timesteps(diffusion)
        start = stage.model.encode(stage.model.upscaler(lr))[0]
        level = timesteps[torch.randint(0, len(timesteps), (1,), generator=replay)]
    noise = torch.randn(start.shape, generator=replay)
    assert t.tolist() == level.repeat(6).tolist()
    torch.testing.assert_close(noisy, stage.scheduler.add_noise(start, noise, t))
    assert not torch.allclose(stage.model.encode(hr)[0], stage.model.encode(stage.model.upscaler(lr))[0], atol=1e-3)
    with pytest.raises(ValueError, match="latents='sampled'"):
        STAGE_CLASSES["unet"](copy.deepcopy(model), diffusion, latents="sampled")


def test_optimizer_state_round_trip_continues_exactly(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    data = torch.randn(8, 5)

    def step(m, opt):
        opt.zero_grad()
        m(data).pow(2).mean().backward()
        opt.step()

    for _ in range(3):
        step(model, optimizer)
    save_optimizer(tmp_path / "opt.safetensors", optimizer)
    resumed = copy.deepcopy(model)
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=0.5)  # the file restores lr too
    load_optimizer(tmp_path / "opt.safetensors", resumed_optimizer)
    step(model, optimizer)
    step(resumed, resumed_optimizer)
    torch.testing.assert_close(resumed.weight, model.weight, rtol=0, atol=0)


def test_weight_average_follows_its_decay_resumes_exactly_and_swaps_in_only_inside_its_block(tmp_path):
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    trained = list(model.parameters())
    ema = EMAModel(trained, decay=0.5)
    history = []
    for _ in range(4):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.step(trained)
        history.append(model.weight.detach().clone())
    # diffusers' schedule: decay min(0.5, (1 + n) / (10 + n)) at its n-th update after the first (0 at the first)
    expected = history[0]
    for n, weight in enumerate(history[1:], start=1):
        decay = min(0.5, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * weight
    last = model.weight.detach().clone()
    with averaged_weights(ema, trained):
        torch.testing.assert_close(model.weight, expected)
    torch.testing.assert_close(model.weight, last, rtol=0, atol=0)  # the trained values are back
    with averaged_weights(None, trained):
        torch.testing.assert_close(model.weight, last, rtol=0, atol=0)

    save_ema(tmp_path / "ema.safetensors", ema)
    resumed = EMAModel(trained, decay=0.9)  # the file restores the decay and the step count too
    load_ema(tmp_path / "ema.safetensors", resumed)
    assert resumed.optimization_step == ema.optimization_step == 4 and resumed.decay == 0.5
    ema.step(trained)
    resumed.step(trained)
    for a, b in zip(resumed.shadow_params, ema.shadow_params, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_resumed_run_restores_the_checkpointed_average_or_starts_one_from_the_restored_weights(
        tmp_path, tiny_parts):
    import ray.train
    from diffusers.training_utils import EMAModel

    from satecco.jobs.loop import EMA, PROGRESS, _restore

    model, diffusion = tiny_parts

    def fresh():
        stage = STAGE_CLASSES["refiner"](copy.deepcopy(model), diffusion, seed=0)
        trained = [p for p in stage.parameters() if p.requires_grad]
        return stage, trained, torch.optim.AdamW(trained), EMAModel(trained, decay=0.9)

    stage, trained, optimizer, ema = fresh()
    with torch.no_grad():
        for p in trained:
            p.add_(1.0)  # the weights at the checkpoint
    ema.step(trained)  # its average: these weights (diffusers' first update copies them)
    with torch.no_grad():
        for p in trained:
            p.add_(1.0)  # the checkpoint's last-step weights differ from its average
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    stage.save(folder)
    save_optimizer(folder / "optimizer.safetensors", optimizer)
    (folder / PROGRESS).write_text(json.dumps({"step": 1, "mlflow_run_id": None}))
    saved_weights = [p.detach().clone() for p in trained]
    saved_average = [p.clone() for p in ema.shadow_params]

    def restored(with_average: bool) -> list[torch.Tensor]:
        (folder / EMA).unlink(missing_ok=True)
        if with_average:
            save_ema(folder / EMA, ema)
        resumed, resumed_trained, resumed_optimizer, resumed_ema = fresh()
        step, _ = _restore(resumed, resumed_optimizer, resumed_ema, resumed_trained,
                           ray.train.Checkpoint.from_directory(str(folder)))
        assert step == 1
        for p, saved in zip(resumed_trained, saved_weights, strict=True):
            torch.testing.assert_close(p, saved, rtol=0, atol=0)
        averages = [a.clone() for a in resumed_ema.shadow_params]
        with torch.no_grad():
            for p in resumed_trained:
                p.add_(1.0)  # training goes on: the average must hold its own copies, not views of the weights
        for average, before in zip(resumed_ema.shadow_params, averages, strict=True):
            torch.testing.assert_close(average, before, rtol=0, atol=0)
        return averages

    for average, saved in zip(restored(with_average=True), saved_average, strict=True):
        torch.testing.assert_close(average, saved, rtol=0, atol=0)
    for average, saved in zip(restored(with_average=False), saved_weights, strict=True):
        torch.testing.assert_close(average, saved, rtol=0, atol=0)


TRAINS = {"upscaler": {"upscaler"}, "unet": {"latent_encoder", "unet_adapters"}, "vae": {"vae_adapters"},
          "refiner": {"refiner"}}


@pytest.mark.parametrize("name", sorted(TRAINS))
def test_each_stage_trains_exactly_its_modules(name, tiny_parts):
    model, diffusion = tiny_parts
    stage = STAGE_CLASSES[name](copy.deepcopy(model), diffusion, seed=0)
    trainable = {n.split(".")[1] for n, p in stage.named_parameters() if p.requires_grad}
    assert trainable == TRAINS[name]
    if name == "unet":  # zero-initialised adapters: make their gradients reach every parameter
        from conftest import perturb_

        perturb_(stage.model.unet_adapters, std=0.02)
    hr = torch.from_numpy(np.stack(random_frames(6, 32, 32))).float().div(127.5).sub(1)
    hr = hr.permute(0, 3, 1, 2)[None]
    lr = torch.nn.functional.interpolate(hr[0], scale_factor=0.25, mode="area")[None]
    loss, logs = stage(hr, lr)
    loss.backward()
    for n, p in stage.named_parameters():
        if n.split(".")[1] in TRAINS[name]:
            assert p.grad is not None, n
        else:
            assert p.grad is None, n
    assert torch.isfinite(loss) and logs


@pytest.mark.parametrize("latents", ["hr", "sampled"])
def test_vae_stage_decodes_the_hr_latents_or_the_sampled_ones(latents, tiny_parts):
    """Stage 3 decodes the HR frames' latents (the paper) or, with ``latents="sampled"``, the Z_0 that
    the frozen upscaler and UNet sample from X_u with the stage's noise, as inference does."""
    from satecco.pipeline import denoise_steps, encode_steps

    model, diffusion = tiny_parts
    stage = STAGE_CLASSES["vae"](copy.deepcopy(model), diffusion, seed=3, latents=latents)
    hr = torch.rand(1, 6, 3, 32, 32) * 2 - 1
    lr = torch.nn.functional.interpolate(hr[0], scale_factor=0.25, mode="area")[None]
    decoded = []
    stage.model.vae.decoder.register_forward_hook(lambda m, args, out: decoded.append(args[0]))
    stage(hr, lr)
    with torch.no_grad():
        _, from_upscaled, _ = encode_steps(stage.model, lr)
        if latents == "hr":
            expected = stage.model.encode(hr)[0]
        else:
            noise = torch.randn(from_upscaled.shape, generator=torch.Generator().manual_seed(3))
            expected = denoise_steps(stage.model, diffusion, from_upscaled, noise, 6)
        expected = stage.model.vae.post_quant_conv(expected / stage.model.vae.config.scaling_factor)
    torch.testing.assert_close(decoded[0], expected)
    assert not torch.allclose(stage.model.encode(hr)[0], from_upscaled, atol=1e-3)
    with pytest.raises(ValueError, match="latents='noisy'"):
        STAGE_CLASSES["vae"](copy.deepcopy(model), diffusion, latents="noisy")


def test_base_stage_fixes_the_latent_scale_when_the_unet_phase_starts():
    from satecco.build import random_base_model
    from satecco.presets import TINY

    stage = BaseStage(random_base_model(TINY, 0), TINY.diffusion, vae_steps=2, kl_weight=1e-6)
    hr = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    for step in range(3):
        stage.before_step(step)
        loss, logs = stage(hr, hr[:, :, :, ::4, ::4])
        assert set(logs) == ({"vae_l1", "vae_kl"} if step < 2 else {"noise_mse"})
    mean, square = stage.latent_moments.tolist()
    assert stage.vae.config.scaling_factor == pytest.approx(1 / np.sqrt(square - mean**2))
    assert not any(p.requires_grad for p in stage.vae.parameters())


def test_train_config_errors_name_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\ncrop_size: 64\n")
    with pytest.raises(ValueError, match=r"c.yaml.*crop_size"):
        load_train_config(str(path), "upscaler")
    path.write_text("stage: vae\n")
    with pytest.raises(ValueError, match="stage 'vae', not 'unet'"):
        load_train_config(str(path), "unet")
    path.write_text("crop: 30\n")
    with pytest.raises(ValueError, match=r"c.yaml.*crop=30"):
        load_train_config(str(path), "unet")
    config = load_train_config(None, "base", data=("a.mp4",), max_steps=5)
    assert config.data == ("a.mp4",) and config.max_steps == 5 and config.lr == 5e-5


def test_cosine_learning_rate_decays_over_each_phase_and_restarts_for_the_base_unet():
    base = load_train_config(None, "base", lr=1e-3, max_steps=400, base_fraction_vae=0.75, lr_schedule="cosine")
    rates = [base.learning_rate(step) for step in range(400)]
    assert rates[0] == rates[300] == pytest.approx(1e-3)  # the VAE's phase, then the UNet's, start at lr
    assert rates[150] == pytest.approx(5e-4) and rates[350] == pytest.approx(5e-4)
    assert rates[299] < 1e-6 and rates[399] < 1e-5
    assert all(a > b for a, b in zip(rates[:299], rates[1:300], strict=True))
    unet = load_train_config(None, "unet", lr=1e-4, max_steps=100, lr_schedule="cosine")
    assert unet.learning_rate(0) == pytest.approx(1e-4) and unet.learning_rate(50) == pytest.approx(5e-5)
    assert load_train_config(None, "unet", lr=1e-4, max_steps=100).learning_rate(99) == 1e-4


@pytest.fixture(scope="module")
def grating(tmp_path_factory):
    return str(write(tmp_path_factory.mktemp("data") / "grating.mkv", textured_frames(), "ffv1"))


# The noise loss draws a timestep per clip, so stage 2's single-sample losses scatter most: more steps. With
# random base weights, a UNet that is only adapted cannot learn to predict the noise at the small t the tiny
# preset trains on (t <= 499); predicting the clean latents, which the guidance carries, it can.
@pytest.mark.parametrize("stage, key, steps, prediction", [
    ("base", "vae_l1", 24, None), ("upscaler", "loss", 16, None), ("unet", "loss", 30, "sample"),
    ("vae", "loss", 16, None), ("refiner", "loss", 16, None)])
def test_each_stage_loss_falls(grating, stage, key, steps, prediction):
    """Each stage's module, built and stepped as a Ray Train worker builds and steps it (without DDP; the
    distributed path is tests/test_train_ray.py's), learns: its loss falls on a textured clip."""
    from satecco.jobs.loop import build_stage, train_step
    from satecco.training.config import TrainConfig

    config = TrainConfig(stage=stage, data=(grating,), frames=6, crop=32, batch_size=1, lr=2e-3, max_steps=steps,
                         base_fraction_vae=1.0, prediction_type=prediction)
    torch.manual_seed(0)
    module = build_stage(config, rank=0)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    (clip,) = find_clips(grating)
    rng, losses = np.random.default_rng(0), []
    for step in range(steps):
        sample = make_sample(clip, int(rng.integers(0, clip.frames - 5)), 6, 32, rng)
        batch = {name: torch.from_numpy(frames)[None] for name, frames in sample.items()}
        loss, logs = train_step(module, module, optimizer, batch, step)
        losses.append(loss.item() if key == "loss" else logs[key].item())
    quarter = steps // 4
    assert np.mean(losses[-quarter:]) < 0.93 * np.mean(losses[:quarter]), losses


def test_a_stage_trained_with_tfa_off_leaves_tfa_out_and_trains_the_rest(grating):
    """--no-tfa unet (a retrained row of the paper's Table 2): stage 2 runs the UNet decoder without TFA,
    its TFA weights stay as they were and out of the optimiser, and SFA and the latent encoder still learn."""
    from satecco.jobs.loop import build_stage, train_step
    from satecco.training.config import TrainConfig

    config = TrainConfig(stage="unet", data=(grating,), frames=6, crop=32, batch_size=1, lr=2e-3, max_steps=2,
                         no_tfa=["unet"])
    torch.manual_seed(0)
    module = build_stage(config, rank=0)
    adapters = module.model.unet_adapters
    assert not adapters.tfa_enabled and adapters.sfa_enabled
    assert not any(p.requires_grad for p in adapters.tfa.parameters())
    before = {name: p.detach().clone() for name, p in module.model.named_parameters()
              if name.startswith(("unet_adapters.", "latent_encoder."))}
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr)
    (clip,) = find_clips(grating)
    sample = make_sample(clip, 0, 6, 32, np.random.default_rng(0))
    train_step(module, module, optimizer, {name: torch.from_numpy(f)[None] for name, f in sample.items()}, 0)
    moved = {name for name, p in module.model.named_parameters() if name in before and not torch.equal(p, before[name])}
    assert moved and all(name.startswith(("unet_adapters.sfa.", "latent_encoder.")) for name in moved), moved
    assert any(name.startswith("unet_adapters.sfa.") for name in moved)
    with pytest.raises(ValueError, match="no_sfa"):
        TrainConfig(stage="unet", no_sfa=["upscaler"])


def test_bf16_mixed_precision_learns_in_bfloat16_on_fp32_weights(grating):
    """--precision bf16: the UNet runs in bfloat16 inside the step, the weights and AdamW's state stay
    fp32, and stage 2's loss falls as in fp32."""
    from satecco.jobs.loop import build_stage, train_step
    from satecco.training.config import TrainConfig

    config = TrainConfig(stage="unet", data=(grating,), frames=6, crop=32, batch_size=1, lr=2e-3, max_steps=30,
                         prediction_type="sample", precision="bf16")
    torch.manual_seed(0)
    module = build_stage(config, rank=0)
    dtypes: set[torch.dtype] = set()
    module.model.unet.register_forward_hook(lambda m, args, out: dtypes.add(out.sample.dtype))
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr)
    (clip,) = find_clips(grating)
    rng, losses = np.random.default_rng(0), []
    for step in range(config.max_steps):
        sample = make_sample(clip, int(rng.integers(0, clip.frames - 5)), 6, 32, rng)
        batch = {name: torch.from_numpy(frames)[None] for name, frames in sample.items()}
        losses.append(train_step(module, module, optimizer, batch, step, precision=config.precision)[0].item())
    assert dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(v.dtype == torch.float32 for state in optimizer.state.values() for v in state.values() if v.ndim)
    assert np.mean(losses[-7:]) < 0.93 * np.mean(losses[:7]), losses


def test_validation_runs_the_inference_steps_with_the_inference_noise(tiny_parts):
    """A stage's held-out output is what `satecco upscale --seed 0` gives for the same window: both run
    satecco.pipeline's steps, with the same per-frame noise."""
    from conftest import perturb_

    from satecco.layout import frames_to_model, model_to_frames
    from satecco.pipeline import SATeCoPipeline
    from satecco.windows import quantize

    model, diffusion = tiny_parts
    model = perturb_(copy.deepcopy(model), std=0.02)  # active adapters: the guidance paths count too
    frames = np.stack(random_frames(6, 16, 24, seed=4))
    expected = quantize(SATeCoPipeline(copy.deepcopy(model), diffusion).upscale_window(frames, 0, seed=0))
    stage = STAGE_CLASSES["refiner"](model, diffusion).eval()
    branches = stage.validate(frames_to_model(frames), None)
    got = model_to_frames(branches["output"])
    assert set(branches) == {"output", "x_u", "x_d"}  # X_u and X_d are logged beside X_H
    assert got.shape == expected.shape == (6, 64, 96, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("name", ["unet", "vae"])
def test_gradient_checkpointing_recomputes_the_guided_blocks_and_keeps_the_gradients(name, tiny_parts):
    """With checkpointing on, the backward pass reruns the frozen decoder's blocks and their adapters
    under the guidance of their forward pass (after ``guidance(...)`` has ended), and every trained
    parameter gets the gradient it gets without checkpointing."""
    from conftest import perturb_

    model, diffusion = tiny_parts
    hr = torch.rand(1, 6, 3, 32, 32) * 2 - 1
    lr = torch.nn.functional.interpolate(hr[0], scale_factor=0.25, mode="area")[None]
    gradients, backward_calls = [], []
    for checkpointing in (False, True):
        stage = STAGE_CLASSES[name](copy.deepcopy(model), diffusion, seed=0)
        adapters = perturb_(getattr(stage.model, f"{name}_adapters"), std=0.02)
        if checkpointing:
            stage.model.enable_gradient_checkpointing()
        network = stage.model.unet if name == "unet" else stage.model.vae.decoder
        calls = []
        for what, owner, method in (("resnet", network.up_blocks[-1].resnets[0], "forward"),
                                    ("adapter", adapters, "adapt")):
            original = getattr(owner, method)
            setattr(owner, method, lambda *args, _f=original, _w=what, _log=calls, **kw: _log.append(_w) or _f(*args, **kw))
        loss, _ = stage(hr, lr)
        forward_calls = len(calls)
        loss.backward()
        backward_calls.append(sorted(calls[forward_calls:]))
        gradients.append({n: p.grad.clone() for n, p in stage.named_parameters() if p.requires_grad})
    levels = len(adapters.sfa)
    assert backward_calls == [[], ["adapter"] * levels + ["resnet"]]
    assert gradients[0].keys() == gradients[1].keys()
    for key, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][key], gradient, rtol=1e-4, atol=1e-7, msg=key)
