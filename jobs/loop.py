"""``train_loop_per_worker``: the one training loop every stage runs on every Ray Train worker.

Each step: the worker's shard of windows -> the stage's loss -> AdamW on the stage's modules (DDP
averages their gradients). Every ``checkpoint_every`` steps all workers call ``ray.train.report``;
rank 0 attaches the checkpoint (the stage's modules as safetensors, the optimiser state, the step and
the MLflow run id, and with ``ema_decay`` the moving average of the weights, which rank 0 keeps and
validates and exports). A restarted worker group or a relaunched job with the same run name continues
from the last checkpoint via ``ray.train.get_checkpoint()``. MLflow and printing happen on rank 0 only.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel

from satecco.build import build_model, random_base_model, switch_off_adapters
from satecco.jobs.tracking import Tracker
from satecco.layout import batch_to_model, frames_to_model, model_to_frames
from satecco.metrics.fidelity import video_psnr
from satecco.metrics.imresize import imresize
from satecco.presets import get_preset
from satecco.schedule import base_schedule
from satecco.storage import atomic_output
from satecco.training.config import TrainConfig
from satecco.training.data import validation_pair
from satecco.training.stages import STAGE_CLASSES, BaseStage
from satecco.training.state import averaged_weights, load_ema, load_optimizer, save_ema, save_optimizer

PROGRESS = "progress.json"
EMA = "ema.safetensors"


def build_stage(config: TrainConfig, rank: int) -> torch.nn.Module:
    """The stage module for ``config`` (model weights from ``config.base_model`` / ``config.weights``)."""
    preset = get_preset(config.preset)
    seed = config.seed * 1000 + rank  # data-independent randomness (noise, timesteps) differs per worker
    if config.stage == "base":  # no base model yet: the schedule it is trained with, saved with it
        base = random_base_model(preset, config.seed)
        diffusion = base_schedule(preset.diffusion, {}, config.diffusion_overrides())
        return BaseStage(base, diffusion, vae_steps=config.base_vae_steps,
                         kl_weight=config.kl_weight, seed=seed, max_timestep=config.max_timestep)
    model, diffusion = build_model(preset, base_model=config.base_model, weights=config.weights, seed=config.seed,
                                   diffusion=config.diffusion_overrides())
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    latents = {"vae": config.vae_latents, "unet": config.unet_latents}
    options = {"latents": latents[config.stage]} if config.stage in latents else {}
    stage = STAGE_CLASSES[config.stage](model, diffusion, seed=seed, max_timestep=config.max_timestep, **options)
    switch_off_adapters(model, config.no_sfa or (), config.no_tfa or ())  # after the stage unfroze its modules
    return stage


class Validation:
    """The held-out clip (rank 0): PSNR of the stage's output, against bicubic x4 on the same frames."""

    def __init__(self, config: TrainConfig, device: torch.device):
        pair = validation_pair(config.val, config.frames, config.val_crop, degradation=config.degradation)
        self.hr, self.device = pair["hr"], device
        self.lr = frames_to_model(pair["lr"], device)
        self.hr_model = frames_to_model(pair["hr"], device)
        self.bicubic = np.stack([imresize(frame, scale=4) for frame in pair["lr"]])
        self.bicubic_psnr = video_psnr(self.bicubic, self.hr)

    def __call__(self, stage: torch.nn.Module) -> tuple[dict[str, float], np.ndarray]:
        """``({"val_psnr": the output's PSNR, "val_psnr_x_u": ..., "val_psnr_x_d": ...}, side-by-side
        middle frame: bicubic | output | HR)``; the branches where the stage has them (stages 2–4)."""
        training = [m for m in stage.modules() if m.training]
        stage.eval()
        outputs = {key: model_to_frames(video.float().cpu())
                   for key, video in stage.validate(self.lr, self.hr_model).items()}
        for module in training:
            module.train()
        output = outputs["output"]
        middle = len(output) // 2
        panel = np.concatenate([self.bicubic[middle], output[middle], self.hr[middle]], axis=1)
        psnrs = {("val_psnr" if key == "output" else f"val_psnr_{key}"): video_psnr(frames, self.hr)
                 for key, frames in outputs.items()}
        return psnrs, panel


def _restore(stage, optimizer, ema: EMAModel | None, trained: list[torch.nn.Parameter],
             checkpoint) -> tuple[int, str | None]:
    with checkpoint.as_directory() as folder:
        folder = Path(folder)
        stage.load(folder)
        load_optimizer(folder / "optimizer.safetensors", optimizer)
        if ema is not None and (folder / EMA).exists():
            load_ema(folder / EMA, ema)
        elif ema is not None:  # the average turned on at a resume: it starts from the restored weights
            ema.load_state_dict({"shadow_params": [p.detach() for p in trained]})
        progress = json.loads((folder / PROGRESS).read_text())
    return progress["step"], progress["mlflow_run_id"]


def train_step(stage: torch.nn.Module, wrapped: torch.nn.Module, optimizer: torch.optim.Optimizer,
               batch: dict[str, torch.Tensor], step: int, device: torch.device | str = "cpu",
               precision: str = "fp32") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimiser step of ``stage`` (``wrapped``: the same module, in DDP on a Ray Train worker) on
    ``batch`` ``{"hr": (B, T, H, W, 3), "lr": (B, T, H/4, W/4, 3)}`` uint8; returns ``(loss, logs)``.
    ``precision`` ``bf16``: the forward pass autocasts to bfloat16; the backward pass and the optimiser
    work on the fp32 weights."""
    stage.before_step(step)
    with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=precision == "bf16"):
        loss, logs = wrapped(batch_to_model(batch["hr"], device), batch_to_model(batch["lr"], device))
    loss = loss.float()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss, logs


def train_loop_per_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    config = TrainConfig(**loop_config)
    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(config.seed * 1000 + rank)
    device = ray.train.torch.get_device()
    stage = build_stage(config, rank)
    # Stage 0 trains the VAE, then the UNet: in each phase the other network's parameters are unused.
    wrapped = ray.train.torch.prepare_model(
        stage, parallel_strategy_kwargs={"find_unused_parameters": config.stage == "base"})
    trained = [p for p in stage.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    ema = EMAModel(trained, decay=config.ema_decay) if rank == 0 and config.ema_decay else None
    step, run_id = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        step, run_id = _restore(stage, optimizer, ema, trained, checkpoint)
    resumed_from = step
    tracker = Tracker(config, run_id) if rank == 0 else None
    validation = Validation(config, device) if rank == 0 and config.val else None
    if tracker is not None:
        print(f"[{config.name}] {'resuming at' if step else 'starting'} step {step} of {config.max_steps}", flush=True)
        if validation is not None and run_id is None:
            tracker.metrics({"val_psnr_bicubic": validation.bicubic_psnr}, step=0)

    shard = ray.train.get_dataset_shard("train")
    loss = torch.tensor(float("nan"))
    while step < config.max_steps:
        for batch in shard.iter_torch_batches(batch_size=config.batch_size, drop_last=True):
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate(step)
            loss, logs = train_step(stage, wrapped, optimizer, batch, step, device, config.precision)
            if ema is not None:
                ema.step(trained)
            step += 1
            if tracker is not None and (step % config.log_every == 0 or step == config.max_steps):
                tracker.metrics({"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                                 **{k: v.item() for k, v in logs.items()}}, step=step)
            if validation is not None and (step % config.validate_every == 0 or step == config.max_steps):
                with averaged_weights(ema, trained):
                    psnrs, panel = validation(stage)
                tracker.metrics(psnrs, step=step)
                tracker.frame(panel, key="val_bicubic_output_hr", step=step)
                branches = "".join(f", {key[9:]} {value:.2f} dB" for key, value in psnrs.items() if key != "val_psnr")
                print(f"[{config.name}] step {step}: loss {loss.item():.4f}, held-out PSNR "
                      f"{psnrs['val_psnr']:.2f} dB (bicubic {validation.bicubic_psnr:.2f} dB{branches})", flush=True)
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                _report(config, stage, optimizer, ema, tracker, step, loss.item(), resumed_from)
            if step >= config.max_steps:
                break

    if tracker is not None:
        output = Path(config.output)
        with averaged_weights(ema, trained):
            _export(stage, output)
        tracker.final(config, output)
        tracker.close()
        print(f"[{config.name}] wrote {output}", flush=True)


def _report(config: TrainConfig, stage, optimizer, ema: EMAModel | None, tracker: Tracker | None, step: int,
            loss: float, resumed_from: int) -> None:
    """Every worker reports; rank 0 (the one with a tracker) attaches the checkpoint."""
    import ray.train

    metrics = {"step": step, "loss": loss, "resumed_from": resumed_from}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if tracker is not None:
            folder = Path(tmp)
            stage.save(folder)
            save_optimizer(folder / "optimizer.safetensors", optimizer)
            if ema is not None:
                save_ema(folder / EMA, ema)
            (folder / PROGRESS).write_text(json.dumps({"step": step, "mlflow_run_id": tracker.run_id}))
            if config.log_checkpoints:
                tracker.checkpoint(folder, step)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"checkpoint_{step:07d}")


def _export(stage, output: Path) -> None:
    """The final weights at ``output``, written beside it first and moved into place whole."""
    with atomic_output(output, replace_folder=True) as partial:
        stage.export(partial)
