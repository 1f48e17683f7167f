"""The assembled model: frozen base, identity at init, attach points, and the sd21 architecture on meta."""

from __future__ import annotations

import pytest
import torch
from conftest import perturb_

from satecco.build import default_modules, random_base_model
from satecco.models.satecco import TRAINABLE, SATeCo
from satecco.presets import SD21, TINY


def test_only_satecco_modules_train(tiny):
    trainable = {name for name, p in tiny.named_parameters() if p.requires_grad}
    frozen = {name for name, p in tiny.named_parameters() if not p.requires_grad}
    assert trainable, "SATeCo's modules have parameters to train"
    assert {name.split(".")[0] for name in trainable} == set(TRAINABLE)
    assert {name.split(".")[0] for name in frozen} == {"unet", "vae"}
    assert all(p.requires_grad for p in tiny.upscaler.parameters())
    for name in TRAINABLE:
        assert any(True for _ in getattr(tiny, name).parameters()), name


def _guidance(model: SATeCo, frames: int, height: int, width: int):
    generator = torch.Generator().manual_seed(3)
    video = torch.rand(1, frames, 3, height, width, generator=generator) * 2 - 1
    latents, features = model.encode(video)
    return latents, model.latent_encoder(latents), features


@torch.no_grad()
def test_fresh_adapters_leave_unet_and_vae_decoder_unchanged(tiny):
    bare = random_base_model(TINY, seed=0)  # same seeded weights as the tiny fixture, without hooks
    frames = 6
    latents, guidance, features = _guidance(tiny, frames, 32, 48)
    noisy = latents + torch.randn(latents.shape, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(500)
    context = tiny.prompt_embeds.expand(noisy.shape[0], -1, -1)
    expected = bare.unet(noisy, t, encoder_hidden_states=context).sample
    torch.testing.assert_close(tiny.predict_noise(noisy, t, guidance, frames), expected, atol=1e-5, rtol=1e-5)

    decoded = tiny.decode(latents, features, frames)
    expected = bare.vae.decode(latents / tiny.vae.config.scaling_factor).sample
    torch.testing.assert_close(decoded.flatten(0, 1), expected, atol=1e-5, rtol=1e-5)

    # the hooks really sit in the path: trained (here: perturbed) adapters change both outputs
    perturb_(tiny.unet_adapters)
    perturb_(tiny.vae_adapters)
    assert not torch.allclose(tiny.predict_noise(noisy, t, guidance, frames),
                              bare.unet(noisy, t, encoder_hidden_states=context).sample, atol=1e-3)
    assert not torch.allclose(tiny.decode(latents, features, frames).flatten(0, 1), expected, atol=1e-3)


def test_guided_decoder_refuses_to_run_without_guidance(tiny):
    with pytest.raises(RuntimeError, match="outside DecoderAdapters.guidance"):
        tiny.vae.decode(torch.zeros(6, tiny.vae.config.latent_channels, 8, 8))


def test_sd21_architecture_attach_points_and_shapes_on_meta():
    """The full SD 2.1-base configuration, built without allocating memory."""
    frames, height, width = 6, 720 // 8 * 8 // 8, 1280 // 8  # latent of 1280x720 padded to x64: 96 x 160
    height = 96
    with torch.device("meta"):
        base = random_base_model(SD21, seed=0)
        modules = default_modules(SD21, base.unet.config, base.vae.config)
        model = SATeCo(base.unet, base.vae, prompt_embeds=base.prompt_embeds, **modules)
    assert [len(block._forward_hooks) for block in model.unet.up_blocks] == [1, 1, 1, 1]
    assert [len(block._forward_hooks) for block in model.vae.decoder.up_blocks] == [1, 1, 1, 1]
    assert [a.to_qkv.in_channels for a in model.unet_adapters.tfa] == [1280, 1280, 640, 320]
    assert [a.to_qkv.in_channels for a in model.vae_adapters.tfa] == [512, 512, 256, 128]
    assert model.vae_guidance_levels == (2, 1, 0, 0)
    assert model.spatial_multiple == 64

    seen = []
    hooks = [b.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
             for b in model.unet.up_blocks]
    with torch.device("meta"):
        latents = torch.empty(frames, 4, height, width)
        guidance = model.latent_encoder(latents)
        eps = model.predict_noise(latents, torch.tensor(999), guidance, frames)
    for hook in hooks:
        hook.remove()
    assert eps.shape == latents.shape
    assert seen == [tuple(g.shape) for g in guidance] == [
        (6, 1280, 24, 40), (6, 1280, 48, 80), (6, 640, 96, 160), (6, 320, 96, 160)]
    trainable = sum(p.numel() for n in TRAINABLE for p in getattr(model, n).parameters())
    frozen = sum(p.numel() for p in model.unet.parameters()) + sum(p.numel() for p in model.vae.parameters())
    assert 800e6 < frozen < 1000e6  # SD 2.1-base: 866M UNet + 84M VAE
    assert trainable > 0


def test_copies_and_pickles_keep_their_own_hooks(tiny):
    """Ray ships models by pickling: a copy's decoder hooks must use the copy's adapters."""
    import pickle

    clone = pickle.loads(pickle.dumps(tiny))
    perturb_(clone.vae_adapters)
    latents, _, features = _guidance(tiny, 2, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(clone.decode(latents, features, 2), tiny.decode(latents, features, 2), atol=1e-3)
