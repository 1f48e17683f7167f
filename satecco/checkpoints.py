"""Loading and saving: base models from local diffusers folders, SATeCo's modules as safetensors.

SATeCo's modules travel in one ``.safetensors`` file: tensors keyed ``<module>.<parameter>`` and each
module's config as JSON in the file's metadata. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from satecco.models.adapters import DecoderAdapters
from satecco.models.latent_encoder import LatentEncoder
from satecco.models.refiner import VideoRefiner
from satecco.models.upscaler import VideoUpscaler
from satecco.storage import atomic_output

MODULE_CLASSES = {
    "upscaler": VideoUpscaler,
    "latent_encoder": LatentEncoder,
    "unet_adapters": DecoderAdapters,
    "vae_adapters": DecoderAdapters,
    "refiner": VideoRefiner,
}
FORMAT = "satecco-weights-1"


def save_weights(path: str | os.PathLike, modules: dict[str, torch.nn.Module]) -> None:
    """Write ``modules`` (name -> ModelMixin) to one safetensors file, atomically."""
    path = Path(path)
    tensors, configs = {}, {}
    for name, module in modules.items():
        if name not in MODULE_CLASSES:
            raise ValueError(f"unknown SATeCo module {name!r}; expected one of {sorted(MODULE_CLASSES)}")
        configs[name] = {k: v for k, v in module.config.items() if not k.startswith("_")}
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous()
    with atomic_output(path) as partial:
        save_file(tensors, str(partial), metadata={"format": FORMAT, "configs": json.dumps(configs)})


def read_weight_configs(path: str | os.PathLike) -> dict[str, dict]:
    """The module configs stored in a SATeCo weights file; ``ValueError`` naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a safetensors file ({error})") from error
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a SATeCo weights file (metadata format {metadata.get('format')!r})")
    return json.loads(metadata["configs"])


def load_weights(path: str | os.PathLike, modules: dict[str, torch.nn.Module]) -> list[str]:
    """Load the tensors of ``path`` into ``modules`` (strict per module); returns the module names loaded."""
    configs = read_weight_configs(path)
    tensors = load_file(str(path))
    loaded = []
    for name in configs:
        if name not in modules:
            raise ValueError(f"{path}: holds module {name!r} that this model does not have")
        prefix = f"{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            modules[name].load_state_dict(state, strict=True)
        except RuntimeError as error:
            reason = " ".join(str(error).split())  # torch's message spans lines; ours is one
            raise ValueError(f"{path}: module {name!r} does not fit this model: {reason}") from error
        loaded.append(name)
    return loaded
