"""Training losses. Videos are ``(B, T, 3, H, W)`` in [-1, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss ``mean(sqrt((x - y)^2 + eps^2))`` (Charbonnier et al. 1994; eps as in LapSRN/EDVR)."""
    return torch.sqrt((prediction - target) ** 2 + eps**2).mean()


def diffusion_target(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, scheduler) -> torch.Tensor:
    """What the UNet learns to predict for ``z_t`` under ``scheduler.config.prediction_type``."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise ValueError(f"unsupported prediction type {kind!r}")


def noise_loss(predict, latents: torch.Tensor, scheduler, generator: torch.Generator | None = None,
               frames: int = 1, max_timestep: int | None = None) -> torch.Tensor:
    """The latent-diffusion objective (Rombach et al. 2022, Eq. 2) on clean ``latents`` ``(B·T, c, h, w)``.

    Draws ``t ~ U{0, max_timestep}`` (default ``T - 1``) per clip of ``frames`` latents (a clip's frames
    share their noise level) and ``eps ~ N(0, I)``; ``predict(z_t, t)`` is the UNet. A model that samples
    from ``start_step`` down never sees a larger ``t``, so its training need not spend steps on one.
    """
    highest = scheduler.config.num_train_timesteps - 1 if max_timestep is None else max_timestep
    noisy, noise, timesteps = _noised(latents, scheduler, torch.arange(highest + 1), generator, frames)
    return F.mse_loss(predict(noisy, timesteps).float(), diffusion_target(latents, noise, timesteps, scheduler).float())


def landing_loss(predict, start: torch.Tensor, target: torch.Tensor, scheduler, timesteps: torch.Tensor,
                 generator: torch.Generator | None = None, frames: int = 1) -> torch.Tensor:
    """The sampler's own step as the objective: ``z_t`` is ``start`` ``(B·T, c, h, w)`` (the latents that
    inference noises: those of ``X_u``) noised to a ``t`` drawn from ``timesteps`` (the sampler's, one per
    clip of ``frames``), and the UNet learns the prediction under which ``z_t`` is ``target`` (the HR
    latents) noised, ``eps* = (z_t - sqrt(a_t) target) / sqrt(1 - a_t)``: a deterministic DDIM step from
    ``t`` then estimates ``x_0 = target``. The noise loss noises ``target`` instead, so near ``t = 0`` the
    UNet learns to keep what it is given, and at inference it keeps the latents of ``X_u``.
    """
    noisy, _, t = _noised(start, scheduler, timesteps, generator, frames)
    alpha = scheduler.alphas_cumprod.to(start.device)[t].view(-1, 1, 1, 1).to(start.dtype)
    landing = (noisy - alpha.sqrt() * target) / (1 - alpha).sqrt()
    return F.mse_loss(predict(noisy, t).float(), diffusion_target(target, landing, t, scheduler).float())


def _noised(latents: torch.Tensor, scheduler, timesteps: torch.Tensor, generator: torch.Generator | None,
            frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z_t, eps, t)`` for ``latents`` ``(B·T, c, h, w)``: one ``t`` from ``timesteps`` per clip of ``frames``
    (a clip's frames share their noise level), drawn before ``eps ~ N(0, I)``."""
    clips = latents.shape[0] // frames
    t = timesteps[torch.randint(0, len(timesteps), (clips,), generator=generator)]
    t = t.repeat_interleave(frames).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    return scheduler.add_noise(latents, noise, t), noise, t


def kl_loss(posterior) -> torch.Tensor:
    """Mean KL divergence of a diffusers ``DiagonalGaussianDistribution`` from N(0, I), per element."""
    return posterior.kl().mean() / posterior.mean[0].numel()
