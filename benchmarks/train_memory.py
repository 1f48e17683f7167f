"""Estimated peak memory per GPU of each training stage at its configured crop (docs/training.md).

How it is estimated, without a GPU: the stage is built from its config (``configs/train/sd21-*.yaml``
by default) on PyTorch's meta device (shapes, no data) and runs one forward pass at the configured
crop, frames and batch. A saved-tensors hook adds up what autograd keeps for the backward pass, and
forward hooks say which checkpointed unit (diffusers' checkpointed resnet and transformer blocks of
the UNet, the VAE decoder's mid and up blocks, each SFA and TFA) was running when it was saved. Then

    peak = frozen weights (fp32) + trained parameters x 16 B (fp32 value, gradient, AdamW's two moments)
           + activations

where the activations are everything saved without checkpointing, and with it what is saved outside
the checkpointed units, plus every unit's inputs, plus the largest unit's own tensors (the backward
pass recomputes one unit at a time). The meta device does not autocast: ``--dtype bf16`` runs the whole
stage in bfloat16, which is what autocast saves for convolutions and matmuls (it keeps norms in fp32,
so the bf16 figure is a slight underestimate); fp32 is the upper bound. Attention is counted as a
fused GPU kernel keeps it (q, k, v, output, log-sum-exp), not as the meta device's math path, which
would save every attention matrix. Not counted: the allocator's
fragmentation, attention and convolution workspaces, the gradient buffers of the largest layer.

    .venv/bin/python benchmarks/train_memory.py                  # every sd21 stage, bf16 and fp32
    .venv/bin/python benchmarks/train_memory.py --stage unet --crop 384
"""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from dataclasses import replace
from unittest import mock

import torch
from torch import nn

from satecco.jobs.loop import build_stage
from satecco.training.config import load_train_config

STAGES = ("upscaler", "unet", "vae", "refiner")
GIB = 2**30


def checkpointed_units(stage: nn.Module) -> list[nn.Module]:
    """The modules that gradient checkpointing recomputes one at a time (:meth:`SATeCo.enable_gradient_checkpointing`)."""
    model = stage.model
    units: list[nn.Module] = [model.vae.decoder.mid_block, *model.vae.decoder.up_blocks]
    for block in (*model.unet.down_blocks, model.unet.mid_block, *model.unet.up_blocks):
        units += [*block.resnets, *getattr(block, "attentions", [])]
    for adapters in (model.unet_adapters, model.vae_adapters):
        units += [*adapters.sfa, *adapters.tfa]
    return units


class FusedAttentionMemory(torch.autograd.Function):
    """Shapes only: what a fused (flash or memory-efficient) attention kernel saves for its backward pass."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a memory estimate; nothing runs backward")


@contextmanager
def fused_attention():
    """``F.scaled_dot_product_attention`` (diffusers' processors and TFA call it) counted as a fused kernel."""
    def attention(q, k, v, *args, **kwargs):
        return FusedAttentionMemory.apply(q, k, v)

    with mock.patch("torch.nn.functional.scaled_dot_product_attention", attention):
        yield


def activation_bytes(stage: nn.Module, hr: torch.Tensor, lr: torch.Tensor) -> dict[str, float]:
    """Bytes autograd keeps for one forward pass of ``stage`` (built without checkpointing): in all, and
    as checkpointing would keep them. Stage 4 backpropagates through the refiner alone: its frozen
    pipeline runs without autograd (and its sampler's timestep search has no meta kernel), so only the
    refiner runs, on ``X_u`` and ``X_d`` shaped like ``hr``."""
    units = checkpointed_units(stage)
    running: list[nn.Module] = []
    saved: dict[int, tuple[nn.Module | None, int]] = {}
    unit_inputs: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, nn.Parameter):
            saved[id(tensor)] = (running[0] if running else None, tensor.numel() * tensor.element_size())
        return tensor

    def enter(module, args):
        if not running:  # the outermost unit: its tensor inputs are what checkpointing keeps
            for arg in args:
                if torch.is_tensor(arg):
                    unit_inputs[id(arg)] = arg.numel() * arg.element_size()
        running.append(module)

    def leave(module, args, output):
        running.pop()

    hooks = [h for unit in units for h in (unit.register_forward_pre_hook(enter), unit.register_forward_hook(leave))]
    try:
        with fused_attention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            if stage.trains == ("refiner",):
                stage.model.refiner(hr, hr)
            else:
                stage(hr, lr)
    finally:
        for hook in hooks:
            hook.remove()
    per_unit: dict[int, int] = {}
    outside = 0
    for unit, size in saved.values():
        if unit is None:
            outside += size
        else:
            per_unit[id(unit)] = per_unit.get(id(unit), 0) + size
    return {"all": sum(size for _, size in saved.values()),
            "checkpointed": outside + sum(unit_inputs.values()) + max(per_unit.values(), default=0)}


def estimate(stage_name: str, config_path: str, crop: int | None, dtype: torch.dtype) -> dict:
    config = load_train_config(config_path, stage_name)
    if crop:
        config = replace(config, crop=crop)
    with torch.device("meta"):  # measured without checkpointing, whose own hooks would hide what it saves
        stage = build_stage(replace(config, gradient_checkpointing=False), rank=0)
    stage.to(dtype)
    frozen = sum(p.numel() * 4 for p in stage.parameters() if not p.requires_grad)
    trained = sum(p.numel() for p in stage.parameters() if p.requires_grad)
    shape = (config.batch_size, config.frames, 3)
    hr = torch.empty(*shape, config.crop, config.crop, device="meta", dtype=dtype)
    lr = torch.empty(*shape, config.crop // 4, config.crop // 4, device="meta", dtype=dtype)
    activations = activation_bytes(stage, hr, lr)
    kept = activations["checkpointed" if config.gradient_checkpointing else "all"]
    return {"stage": stage_name, "config": config_path, "crop": config.crop, "frames": config.frames,
            "batch_size": config.batch_size, "dtype": str(dtype).removeprefix("torch."),
            "gradient_checkpointing": config.gradient_checkpointing,
            "frozen_weights_gib": frozen / GIB, "trained_parameters_m": trained / 1e6,
            "optimizer_gib": trained * 16 / GIB, "activations_gib": activations["all"] / GIB,
            "activations_checkpointed_gib": activations["checkpointed"] / GIB,
            "peak_gib": (frozen + trained * 16 + kept) / GIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=STAGES, action="append", help="default: every stage")
    parser.add_argument("--preset", default="sd21", help="reads configs/train/PRESET-STAGE.yaml")
    parser.add_argument("--crop", type=int, help="replace the config's HR crop")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), action="append", help="default: both")
    args = parser.parse_args()
    for name in args.stage or STAGES:
        for dtype in args.dtype or ("bf16", "fp32"):
            row = estimate(name, f"configs/train/{args.preset}-{name}.yaml", args.crop,
                           torch.bfloat16 if dtype == "bf16" else torch.float32)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
