"""Noise schedule and sampling: pure functions over a model callable.

The schedulers are diffusers' own; :func:`denoise` builds a fresh one per call so that no state
leaks between clips, and takes its noise as an argument so that all randomness stays with the
caller's explicit ``torch.Generator``.

The schedule has one source for training and inference alike: :func:`satecco.schedule.base_schedule`
settles the :class:`~satecco.presets.DiffusionConfig` (the preset's, then what the base model's
``scheduler/`` states, then what the user gave, refusing a contradiction), and :func:`make_scheduler`
turns it into the scheduler that both the noise loss and :func:`denoise` use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from satecco.presets import SCHEDULE_FIELDS, DiffusionConfig

SAMPLERS = {
    "ddim": DDIMScheduler,  # Song et al., 2021 (eta = 0: deterministic)
    "dpmpp": DPMSolverMultistepScheduler,  # Lu et al., 2022, DPM-Solver++(2M)
    "euler": EulerDiscreteScheduler,  # Karras et al., 2022, Algorithm 2 without churn
}

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_scheduler(config: DiffusionConfig):
    """A fresh diffusers scheduler for ``config.sampler`` with the schedule of ``config``.

    The one place where training (the noise loss) and inference (:func:`denoise`) get their schedule:
    every field of :data:`~satecco.presets.SCHEDULE_FIELDS` that the sampler's class takes is passed on.
    """
    if config.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.sampler!r}; choose one of {sorted(SAMPLERS)}")
    sampler = SAMPLERS[config.sampler]
    accepted = inspect.signature(sampler.__init__).parameters
    return sampler(**{name: getattr(config, name) for name in SCHEDULE_FIELDS if name in accepted})


def set_sampling_timesteps(scheduler, config: DiffusionConfig, device=None) -> torch.Tensor:
    """Set ``scheduler``'s timesteps to ``config.steps`` over the whole schedule and return those at or
    below ``start_step``. Where no step of that schedule is that low (``--steps 1`` with the tiny
    preset's start step 124), the step count is raised to the fewest that has one: one step runs.

    Step counts whose schedule holds a negative timestep are refused, or skipped while raising: diffusers'
    ``trailing`` spacing rounds ``arange(T, 0, -T / n)``, which for some ``n`` (61, 103, 121, … with
    ``T = 1000``) ends on a point just above 0, so the schedule gets ``n + 1`` timesteps, the last ``-1``,
    and ``alphas_cumprod[-1]`` (the noisiest level) at what should be the cleanest step."""
    if not 0 < config.start_step < config.num_train_timesteps:
        raise ValueError(f"start_step={config.start_step} must lie in 1..{config.num_train_timesteps - 1}")
    if config.steps < 1:
        raise ValueError(f"steps={config.steps} must be at least 1")
    for steps in range(config.steps, config.num_train_timesteps + 1):
        scheduler.set_timesteps(steps, device=device)
        if bool((scheduler.timesteps < 0).any()):
            if steps == config.steps:
                raise ValueError(f"steps={steps}: the sampler's {config.timestep_spacing!r} spacing gives a "
                                 f"timestep of -1 at this step count (diffusers' rounding); choose another")
            continue
        kept = scheduler.timesteps[scheduler.timesteps <= config.start_step]
        if len(kept):
            return kept
    raise ValueError(f"no sampling step at or below start_step={config.start_step}")


def sampling_timesteps(config: DiffusionConfig) -> torch.Tensor:
    """The timesteps :func:`denoise` visits: the sampler's schedule at or below ``start_step``."""
    return set_sampling_timesteps(make_scheduler(config), config)


def denoise(model: ModelFn, latents: torch.Tensor, noise: torch.Tensor, config: DiffusionConfig,
            callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Noise ``latents`` up to ``config.start_step`` and denoise them with ``config.sampler``.

    Args:
        model: ``model(z_t, t) -> prediction`` (``config.prediction_type``), ``z_t`` ``(N, c, h, w)``.
        latents: clean latents ``Z`` ``(N, c, h, w)``.
        noise: Gaussian noise like ``latents``.
        config: schedule, sampler, step count and start step.
        callback: called as ``callback(step_index, z_t)`` after every step.

    Returns:
        denoised latents ``Z_0`` ``(N, c, h, w)``.
    """
    scheduler = make_scheduler(config)
    kept = set_sampling_timesteps(scheduler, config, device=latents.device)
    timesteps = scheduler.timesteps
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(len(timesteps) - len(kept))
    z = scheduler.add_noise(latents, noise.to(latents), kept[:1])
    for index, t in enumerate(kept):
        prediction = model(scheduler.scale_model_input(z, t), t)
        z = scheduler.step(prediction, t, z).prev_sample
        if callback is not None:
            callback(index, z)
    return z
