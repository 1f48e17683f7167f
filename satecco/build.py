"""Build a :class:`~satecco.models.satecco.SATeCo` from a preset, a local base-model folder and weights."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from satecco.baselines import BicubicUpscaler, FramewisePipeline, UpscalerPipeline
from satecco.checkpoints import MODULE_CLASSES, load_weights, read_weight_configs
from satecco.models.adapters import DecoderAdapters
from satecco.models.latent_encoder import LatentEncoder
from satecco.models.refiner import VideoRefiner
from satecco.models.satecco import SATeCo, decoder_geometry
from satecco.models.upscaler import VideoUpscaler
from satecco.pipeline import SATeCoPipeline
from satecco.presets import DiffusionConfig, ModelSpec, Preset, get_preset
from satecco.schedule import base_schedule, read_base_schedule

PROMPT_TOKENS = 77  # CLIP's context length; the zero prompt has the same shape as a real one


@dataclass
class BaseModel:
    """The frozen networks and what SATeCo takes from the rest of a diffusers folder."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    prompt_embeds: torch.Tensor  # (1, S, D)
    #: the schedule fields its ``scheduler/scheduler_config.json`` states (:func:`read_base_schedule`)
    schedule: dict = field(default_factory=dict)
    schedule_source: str = "no scheduler/ folder"


def check_base_model_folder(folder: str | Path) -> Path:
    """``folder`` if it holds ``unet/`` and ``vae/`` configs; ``ValueError`` naming it otherwise (reads no weights)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: base model folder does not exist")
    for sub in ("unet", "vae"):
        if not (folder / sub / "config.json").is_file():
            raise ValueError(f"{folder}: not a diffusers model folder ({sub}/config.json is missing)")
    return folder


def load_base_model(folder: str | Path, prompt: str = "") -> BaseModel:
    """Load ``unet/`` and ``vae/`` from a local diffusers-format ``folder``.

    ``scheduler/`` (optional) states the noise schedule the UNet was trained with; ``text_encoder/`` +
    ``tokenizer/`` (optional) embed ``prompt`` once; without them the UNet cross-attends to a zero embedding.
    """
    folder = check_base_model_folder(folder)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    schedule, schedule_source = read_base_schedule(folder)
    if (folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir():
        prompt_embeds = embed_prompt(folder, prompt)
        if prompt_embeds.shape[-1] != unet.config.cross_attention_dim:
            raise ValueError(f"{folder}: text encoder width {prompt_embeds.shape[-1]} does not match the UNet's "
                             f"cross_attention_dim {unet.config.cross_attention_dim}")
    else:
        prompt_embeds = torch.zeros(1, PROMPT_TOKENS, unet.config.cross_attention_dim)
    return BaseModel(unet, vae, prompt_embeds, schedule, str(schedule_source))


@torch.no_grad()
def embed_prompt(folder: Path, prompt: str) -> torch.Tensor:
    """``(1, S, D)`` CLIP text embedding of ``prompt`` with the folder's text encoder (used once)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval()
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return encoder(ids)[0].float()


def random_base_model(preset: Preset, seed: int) -> BaseModel:
    """The preset's UNet and VAE with seeded random weights (reproducible; global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**preset.unet)
        vae = AutoencoderKL(**preset.vae)
    return BaseModel(unet, vae, torch.zeros(1, PROMPT_TOKENS, unet.config.cross_attention_dim))


def default_modules(preset: Preset, unet_config, vae_config) -> dict[str, torch.nn.Module]:
    """SATeCo's modules sized for the given UNet and VAE with the preset's hyper-parameters."""
    unet_channels, unet_levels = decoder_geometry(tuple(unet_config.block_out_channels))
    vae_encoder_channels = tuple(vae_config.block_out_channels)
    vae_channels, vae_levels = decoder_geometry(vae_encoder_channels)
    return {
        "upscaler": VideoUpscaler(scale=preset.scale, **preset.upscaler),
        "latent_encoder": LatentEncoder(latent_channels=vae_config.latent_channels,
                                        level_channels=preset.latent_encoder_levels[:max(unet_levels) + 1],
                                        block_channels=unet_channels, block_levels=unet_levels),
        "unet_adapters": DecoderAdapters(block_channels=unet_channels, guidance_channels=unet_channels,
                                         **preset.unet_adapters),
        "vae_adapters": DecoderAdapters(block_channels=vae_channels,
                                        guidance_channels=tuple(vae_encoder_channels[lv] for lv in vae_levels),
                                        **preset.vae_adapters),
        "refiner": VideoRefiner(**preset.refiner),
    }


def build_model(preset: Preset, base_model: str | Path | None = None, weights: str | Path | None = None,
                seed: int = 0, diffusion: dict | None = None) -> tuple[SATeCo, DiffusionConfig]:
    """SATeCo on the CPU in fp32, and the diffusion settings that go with its base model.

    Without ``base_model`` the preset's architecture gets seeded random weights; SATeCo's modules take
    their configs from ``weights`` when given, else from the preset. The schedule is the preset's, with
    what the base model's ``scheduler/`` states on top, with the :class:`DiffusionConfig` fields that the
    caller gives in ``diffusion`` on top of that (:func:`~satecco.schedule.base_schedule`: one that
    contradicts the base model is refused).
    """
    base = load_base_model(base_model, preset.prompt) if base_model else random_base_model(preset, seed)
    schedule = base_schedule(preset.diffusion, base.schedule, diffusion or {}, base.schedule_source)
    modules = default_modules(preset, base.unet.config, base.vae.config)
    if weights:
        for name, config in read_weight_configs(weights).items():
            if name not in MODULE_CLASSES:
                raise ValueError(f"{weights}: unknown module {name!r}")
            modules[name] = MODULE_CLASSES[name].from_config(config)
        load_weights(weights, modules)
    return SATeCo(base.unet, base.vae, prompt_embeds=base.prompt_embeds, **modules), schedule


def build_pipeline(spec: ModelSpec):
    """The pipeline for ``spec`` on this process's device: :class:`SATeCoPipeline` or the baseline that
    ``spec.method`` names (:mod:`satecco.baselines`), with ``spec``'s ablation switches
    (:func:`method_pipeline`). Refuses random weights unless ``spec.random_weights``
    (:meth:`~satecco.presets.ModelSpec.check_weights`); the tiny preset fills in the embedded default."""
    spec.check_weights()
    spec = spec.with_embedded_default()
    if spec.method == "bicubic":
        return BicubicUpscaler(get_preset(spec.preset).scale)
    device = spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = spec.dtype if spec.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    model, diffusion = build_model(get_preset(spec.preset), base_model=spec.base_model, weights=spec.weights,
                                   diffusion=spec.diffusion_overrides())
    pipeline = SATeCoPipeline(model, diffusion, device=device, dtype=getattr(torch, dtype), tile=spec.tile,
                              tile_overlap=spec.tile_overlap, color_fix=spec.applied_color_fix, batch=spec.batch,
                              compile=spec.compile)
    return method_pipeline(pipeline, spec)


def switch_off_adapters(model: SATeCo, no_sfa: Iterable[str] = (), no_tfa: Iterable[str] = ()) -> None:
    """Switch SFA and/or TFA off in the UNet or VAE decoder (``"unet"``, ``"vae"``), in place: the decoder
    runs without them, and their weights are frozen (a training run leaves them out of its optimiser)."""
    for kind, networks in (("sfa", no_sfa), ("tfa", no_tfa)):
        for network in networks:
            adapters = getattr(model, f"{network}_adapters")
            setattr(adapters, f"{kind}_enabled", False)
            getattr(adapters, kind).requires_grad_(False)


def method_pipeline(pipeline: SATeCoPipeline, spec: ModelSpec):
    """``pipeline`` as ``spec.method`` runs it, with ``spec``'s inference-time ablations applied to its
    model (in place): the refiner's ``w`` (``refiner_w``), SFA and TFA switched off in the UNet and/or
    VAE decoder (``no_sfa``, ``no_tfa``). None of them needs retraining (docs/methods.md)."""
    model = pipeline.model
    if spec.refiner_w is not None:
        model.refiner.register_to_config(weight=float(spec.refiner_w))
    switch_off_adapters(model, spec.no_sfa, spec.no_tfa)
    if spec.method == "framewise":
        return FramewisePipeline(pipeline)
    if spec.method == "upscaler":
        return UpscalerPipeline(pipeline)
    return pipeline
