"""What each training stage (paper §3.5) trains and the loss it minimises.

A stage is an ``nn.Module`` whose ``forward(hr, lr)`` returns ``(loss, logs)`` for a batch of
``hr`` ``(B, T, 3, H, W)`` and ``lr`` ``(B, T, 3, H/4, W/4)`` in [-1, 1]: the module that Ray Train's
``prepare_model`` wraps in DDP. Only the stage's modules require gradients; DDP averages just those.

- ``base`` (tiny preset only, "stage 0"): the base VAE (L1 + KL), then the base UNet (noise loss);
- ``upscaler``: the TMSA video upscaler, Charbonnier loss to the HR frames;
- ``unet``: SFA/TFA in the UNet decoder and the latent encoder E_z, noise loss on the HR latents
  (or the sampler's step from the latents of ``X_u`` to them) with guidance from the latents of ``X_u``,
  UNet frozen;
- ``vae``: SFA/TFA in the VAE decoder, decoding the HR latents guided by the encoder features of
  ``X_u``, Charbonnier loss to the HR frames;
- ``refiner``: the refiner on (decoded ``X_d``, HR) pairs, ``X_d`` from the whole frozen pipeline.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from satecco.build import BaseModel
from satecco.checkpoints import load_weights, save_weights
from satecco.diffusion import make_scheduler, sampling_timesteps
from satecco.models.satecco import SATeCo
from satecco.pipeline import denoise_steps, encode_steps, run_steps, window_noise
from satecco.presets import DiffusionConfig
from satecco.training.config import UNET_LATENTS, VAE_LATENTS
from satecco.training.losses import charbonnier, kl_loss, landing_loss, noise_loss


def latent_shape(model: SATeCo, lr: torch.Tensor) -> tuple[int, int, int]:
    """``(c, h', w')`` of the latents ``Z`` of ``lr`` ``(B, T, 3, h, w)``."""
    height, width = lr.shape[-2:]
    return (model.vae.config.latent_channels, height * model.scale // model.vae_scale,
            width * model.scale // model.vae_scale)


class TrainingStage(nn.Module):
    """Stages 1–4: SATeCo with the modules named in ``trains`` trainable and everything else frozen."""

    trains: tuple[str, ...] = ()
    #: what ``latents`` may name (stages ``unet`` and ``vae``); the first is the default
    latent_choices: tuple[str, ...] = ()

    def __init__(self, model: SATeCo, diffusion: DiffusionConfig, seed: int = 0, max_timestep: int | None = None,
                 latents: str | None = None):
        super().__init__()
        if latents is not None and latents not in self.latent_choices:
            raise ValueError(f"latents={latents!r}: choose one of {self.latent_choices}")
        self.latents = latents or (self.latent_choices[0] if self.latent_choices else None)
        self.model = model.requires_grad_(False).eval()
        #: the noise loss draws t up to this: the schedule's start step unless the config says otherwise
        self.max_timestep = diffusion.start_step if max_timestep is None else max_timestep
        for name in self.trains:
            getattr(model, name).requires_grad_(True).train()
        self.diffusion = diffusion
        self.scheduler = make_scheduler(diffusion)
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def before_step(self, step: int) -> None:
        """Called by the training loop before each step (stages 1–4 keep no schedule of their own)."""

    @torch.no_grad()
    def validate(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """The stage's outputs for a held-out ``lr`` ``(1, T, 3, h, w)``, each ``(1, T, 3, 4h, 4w)``: the
        whole pipeline's ``X_H`` as ``output``, and its branches ``x_u`` and ``x_d``, so that a branch
        going dead shows in the curves."""
        # The noise `satecco upscale --seed 0` draws for frames 0..T-1: validation shows what inference gives.
        noise = window_noise(0, 0, lr.shape[1], latent_shape(self.model, lr))
        upscaled, decoded, refined = run_steps(self.model, self.diffusion, lr, noise)
        return {"output": refined.clamp(-1, 1), "x_u": upscaled.clamp(-1, 1), "x_d": decoded.clamp(-1, 1)}

    def save(self, folder: Path) -> None:
        """Every SATeCo module to ``folder/modules.safetensors`` (the next stage starts from it)."""
        save_weights(folder / "modules.safetensors", self.model.trainable_modules())

    def load(self, folder: Path) -> None:
        load_weights(folder / "modules.safetensors", self.model.trainable_modules())

    def export(self, output: Path) -> None:
        """The final weights: one safetensors file with every SATeCo module."""
        save_weights(output, self.model.trainable_modules())


class UpscalerStage(TrainingStage):
    """Stage 1: the video upscaler alone, Charbonnier loss."""

    trains = ("upscaler",)

    def forward(self, hr, lr):
        loss = charbonnier(self.model.upscaler(lr), hr)
        return loss, {"charbonnier": loss.detach()}

    @torch.no_grad()
    def validate(self, lr, hr):
        return {"output": self.model.upscaler(lr).clamp(-1, 1)}


class UNetStage(TrainingStage):
    """Stage 2: E_z and the UNet's SFA/TFA, guided by the latents of X_u.

    ``latents`` says what the UNet denoises: ``"hr"``, the HR latents noised to any ``t`` up to
    ``max_timestep`` (the noise loss, paper §3.5), or ``"upscaled"``, the latents of X_u noised to the
    sampler's own timesteps, as at inference, with the step that lands on the HR latents as the target
    (:func:`~satecco.training.losses.landing_loss`). From a small start step, a UNet trained the first way
    returns the latents of X_u nearly unchanged (the tiny preset's ``X_d`` stays under ``X_u``).
    """

    trains = ("latent_encoder", "unet_adapters")
    latent_choices = UNET_LATENTS

    @cached_property
    def timesteps(self) -> torch.Tensor:
        """The sampler's timesteps, where ``"upscaled"`` noises the latents of X_u to."""
        return sampling_timesteps(self.diffusion)

    def forward(self, hr, lr):
        model, frames = self.model, hr.shape[1]
        with torch.no_grad():
            guide_latents, _ = model.encode(model.upscaler(lr))
            target_latents, _ = model.encode(hr)
        guidance = model.latent_encoder(guide_latents)

        def predict(z, t):
            return model.predict_noise(z, t, guidance, frames)

        if self.latents == "upscaled":
            loss = landing_loss(predict, guide_latents, target_latents, self.scheduler, self.timesteps,
                                self.generator, frames=frames)
        else:
            loss = noise_loss(predict, target_latents, self.scheduler, self.generator, frames=frames,
                              max_timestep=self.max_timestep)
        return loss, {"noise_mse": loss.detach()}


class VAEStage(TrainingStage):
    """Stage 3: the VAE decoder's SFA/TFA, guided by X_u's encoder features; Charbonnier loss to the HR frames.

    ``latents`` says what the decoder decodes: ``"hr"``, the HR frames' latents (paper §3.5), or
    ``"sampled"``, the ``Z_0`` that the frozen stages 1–2 sample from ``X_u``, as at inference (StableSR's
    CFW trains its decoder so). Where the UNet cannot bring ``Z_0`` near the HR latents (the tiny preset),
    a decoder trained on HR latents trusts latents it will never see.
    """

    trains = ("vae_adapters",)
    latent_choices = VAE_LATENTS

    def forward(self, hr, lr):
        model, frames = self.model, hr.shape[1]
        with torch.no_grad():
            _, latents, features = encode_steps(model, lr)
            if self.latents == "hr":
                latents, _ = model.encode(hr)
            else:
                noise = torch.randn(latents.shape, generator=self.generator).to(latents)
                latents = denoise_steps(model, self.diffusion, latents, noise, frames)
        loss = charbonnier(model.decode(latents, features, frames), hr)
        return loss, {"charbonnier": loss.detach()}


class RefinerStage(TrainingStage):
    """Stage 4: the refiner on (decoded X_d from the frozen pipeline, HR) pairs."""

    trains = ("refiner",)

    def forward(self, hr, lr):
        with torch.no_grad():
            noise = torch.randn((lr.shape[0] * lr.shape[1], *latent_shape(self.model, lr)), generator=self.generator)
            upscaled, decoded, _ = run_steps(self.model, self.diffusion, lr, noise)
        loss = charbonnier(self.model.refiner(upscaled, decoded), hr)
        return loss, {"charbonnier": loss.detach()}


class BaseStage(nn.Module):
    """Stage 0 of the tiny preset: its own base VAE, then its UNet, from scratch.

    The first ``vae_steps`` train the VAE (L1 reconstruction of the posterior mean + ``kl_weight`` x KL);
    then the latents' scaling factor is set to ``1 / std`` (as Stable Diffusion's was) and the UNet
    learns the noise loss on the scaled latents of the frozen VAE, cross-attending to the zero prompt,
    for the timesteps SATeCo samples (up to ``max_timestep``, by default the schedule's ``start_step``).
    """

    def __init__(self, base: BaseModel, diffusion: DiffusionConfig, vae_steps: int, kl_weight: float, seed: int = 0,
                 max_timestep: int | None = None):
        super().__init__()
        self.max_timestep = diffusion.start_step if max_timestep is None else max_timestep
        self.unet, self.vae = base.unet.train(), base.vae.train()
        self.register_buffer("prompt_embeds", base.prompt_embeds, persistent=False)
        self.diffusion = diffusion
        self.scheduler = make_scheduler(diffusion)
        self.vae_steps = vae_steps
        self.kl_weight = kl_weight
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.scaling_fixed = False
        #: running mean and second moment of the latents, for the scaling factor
        self.register_buffer("latent_moments", torch.tensor([0.0, 1.0]))

    @property
    def phase(self) -> str:
        return "vae" if self.step < self.vae_steps else "unet"

    def before_step(self, step: int) -> None:
        """Switch to the UNet phase at ``vae_steps``."""
        self.step = step
        if self.phase == "unet" and not self.scaling_fixed:
            self.begin_unet_phase()

    def forward(self, hr, lr):
        video = rearrange(hr, "b t c h w -> (b t) c h w")
        if self.phase == "vae":
            posterior = self.vae.encode(video).latent_dist
            # The posterior mean, not a sample: SATeCo only ever decodes the mode (SATeCo.encode), and a
            # small VAE trained from scratch learns several times faster without the sampling noise.
            reconstruction = self.vae.decode(posterior.mean).sample
            l1, kl = F.l1_loss(reconstruction, video), kl_loss(posterior)
            with torch.no_grad():
                moments = torch.stack([posterior.mean.mean(), posterior.mean.pow(2).mean()])
                self.latent_moments.lerp_(moments, 0.05)
            return l1 + self.kl_weight * kl, {"vae_l1": l1.detach(), "vae_kl": kl.detach()}
        with torch.no_grad():
            latents = self.vae.encode(video).latent_dist.mode() * self.vae.config.scaling_factor
        context = self.prompt_embeds.expand(latents.shape[0], -1, -1)
        loss = noise_loss(lambda z, t: self.unet(z, t, encoder_hidden_states=context).sample, latents,
                          self.scheduler, self.generator, frames=hr.shape[1], max_timestep=self.max_timestep)
        return loss, {"noise_mse": loss.detach()}

    def begin_unet_phase(self) -> None:
        """Fix the latents' scaling factor from the VAE phase's running moments (all workers agree)."""
        moments = self.latent_moments.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(moments)
            moments /= torch.distributed.get_world_size()
        std = (moments[1] - moments[0] ** 2).clamp_min(1e-8).sqrt().item()
        self.vae.register_to_config(scaling_factor=1.0 / std)
        self._freeze_vae()

    def _freeze_vae(self) -> None:
        self.vae.requires_grad_(False).eval()
        self.scaling_fixed = True

    @torch.no_grad()
    def validate(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """The VAE's reconstruction of ``hr`` ``(1, T, 3, H, W)``, as ``output``."""
        video = rearrange(hr, "b t c h w -> (b t) c h w")
        reconstruction = self.vae.decode(self.vae.encode(video).latent_dist.mode()).sample
        return {"output": rearrange(reconstruction, "(b t) c h w -> b t c h w", b=hr.shape[0]).clamp(-1, 1)}

    def save(self, folder: Path) -> None:
        self.export(folder)
        state = {"latent_moments": self.latent_moments.tolist(), "scaling_fixed": self.scaling_fixed}
        (folder / "base_state.json").write_text(json.dumps(state))

    def load(self, folder: Path) -> None:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        vae = AutoencoderKL.from_pretrained(folder / "vae")
        self.vae.load_state_dict(vae.state_dict())
        self.vae.register_to_config(scaling_factor=vae.config.scaling_factor)
        self.unet.load_state_dict(UNet2DConditionModel.from_pretrained(folder / "unet").state_dict())
        state = json.loads((folder / "base_state.json").read_text())
        self.latent_moments.copy_(torch.tensor(state["latent_moments"]))
        if state["scaling_fixed"]:
            self._freeze_vae()

    def export(self, output: Path) -> None:
        """A diffusers folder: ``unet/``, ``vae/`` (safetensors) and ``scheduler/`` (the preset's schedule)."""
        self.unet.save_pretrained(output / "unet")
        self.vae.save_pretrained(output / "vae")
        self.scheduler.save_config(output / "scheduler")


STAGE_CLASSES = {"upscaler": UpscalerStage, "unet": UNetStage, "vae": VAEStage, "refiner": RefinerStage}
