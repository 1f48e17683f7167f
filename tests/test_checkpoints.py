"""Weights files and local base-model folders, loaded the way a user's command loads them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import perturb_

from satecco.build import build_model
from satecco.checkpoints import load_weights, read_weight_configs, save_weights
from satecco.models.satecco import TRAINABLE
from satecco.presets import TINY


def _outputs(model, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(1, 2, 3, 16, 16, generator=generator) * 2 - 1
    with torch.no_grad():
        upscaled = model.upscaler(video)
        latents, features = model.encode(upscaled)
        guidance = model.latent_encoder(latents)
        eps = model.predict_noise(latents, torch.tensor(300), guidance, 2)
        return torch.cat([eps.flatten(), model.refiner(upscaled, model.decode(latents, features, 2)).flatten()])


def test_weights_round_trip_through_safetensors(tiny, tmp_path):
    perturb_(torch.nn.ModuleList(tiny.trainable_modules().values()))
    path = tmp_path / "satecco.safetensors"
    save_weights(path, tiny.trainable_modules())
    assert set(read_weight_configs(path)) == set(TRAINABLE)
    assert not list(tmp_path.glob(".*partial"))

    loaded, _ = build_model(TINY, weights=path)
    torch.testing.assert_close(_outputs(loaded), _outputs(tiny))
    fresh, _ = build_model(TINY)
    assert not torch.allclose(_outputs(fresh), _outputs(tiny))


def test_weights_with_other_widths_rebuild_their_modules(tmp_path):
    from satecco.models.refiner import VideoRefiner

    path = tmp_path / "refiner.safetensors"
    save_weights(path, {"refiner": perturb_(VideoRefiner(channels=4, weight=0.3))})
    model, _ = build_model(TINY, weights=path)
    assert model.refiner.config.channels == 4 and model.refiner.config.weight == 0.3


def test_bad_weights_files_name_the_file(tiny, tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match="nope.safetensors: no such weights file"):
        build_model(TINY, weights=missing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file at all")
    with pytest.raises(ValueError, match="junk.safetensors: not a safetensors file"):
        build_model(TINY, weights=junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(ValueError, match="foreign.safetensors: not a SATeCo weights file"):
        build_model(TINY, weights=foreign)
    wrong = tmp_path / "wrong.safetensors"
    save_weights(wrong, {"refiner": tiny.refiner})
    with pytest.raises(ValueError, match="wrong.safetensors: module 'refiner' does not fit"):
        load_weights(wrong, {"refiner": torch.nn.Linear(2, 2)})


def _tiny_clip_folder(folder, hidden: int = 32):
    """Write a tiny CLIP text encoder and a word-level BPE tokenizer in diffusers' folder layout."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words = ["a", "high", "quality", "video"]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{w}</w>": i + 2 for i, w in enumerate(words)}}
    letters = sorted({c for w in words for c in w})
    for c in letters:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(f"{c}</w>", len(vocab))
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"), str(folder / "tokenizer" / "merges.txt"),
                              model_max_length=8)
    tokenizer.save_pretrained(folder / "tokenizer")
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                            num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0)
    CLIPTextModel(config).save_pretrained(folder / "text_encoder")


def test_base_model_folder_loads_like_a_users_checkpoint(tiny, tmp_path):
    folder = tmp_path / "base"
    perturb_(tiny.unet, std=0.01)  # weights that differ from the seeded default
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    assert list((folder / "unet").glob("*.safetensors"))
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": "v_prediction"}))

    loaded, diffusion = build_model(TINY, base_model=folder)
    assert diffusion.prediction_type == "v_prediction"
    torch.testing.assert_close(_outputs(loaded), _outputs(tiny))
    assert torch.count_nonzero(loaded.prompt_embeds) == 0  # no text encoder: zero prompt

    _tiny_clip_folder(folder)
    with_text, _ = build_model(TINY, base_model=folder)
    assert with_text.prompt_embeds.shape == (1, 8, 32) and torch.count_nonzero(with_text.prompt_embeds) > 0
    assert not torch.allclose(_outputs(with_text), _outputs(tiny))


def test_bad_base_model_folders_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="missing: base model folder does not exist"):
        build_model(TINY, base_model=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: not a diffusers model folder \(unet/config.json"):
        build_model(TINY, base_model=tmp_path / "empty")
