"""Weights files for the retrained rows of docs/ablation.md: each variant (``scripts/ablation_variants/``)
holds only the SATeCo modules it retrained; :func:`compose` puts them in place of the shipped default's.

    .venv/bin/python scripts/ablation_weights.py fresh-refiner W OUT    # the shipped modules, a fresh refiner of w = W
    .venv/bin/python scripts/ablation_weights.py keep MODULE SRC DST     # MODULE of weights file SRC alone, into DST
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from satecco.checkpoints import MODULE_CLASSES, load_weights, read_weight_configs, save_weights
from satecco.presets import ModelSpec

VARIANTS = Path(__file__).resolve().parent / "ablation_variants"


def load_modules(path: str | Path) -> dict[str, torch.nn.Module]:
    """Every SATeCo module of weights file ``path``, built from its stored config with its weights."""
    modules = {name: MODULE_CLASSES[name].from_config(config) for name, config in read_weight_configs(path).items()}
    load_weights(path, modules)
    return modules


def shipped_modules() -> dict[str, torch.nn.Module]:
    """The embedded default's SATeCo modules."""
    return load_modules(ModelSpec().with_embedded_default().weights)


def compose(variant: str, out: Path) -> Path:
    """``out/<variant>.safetensors``: the shipped modules with those of ``VARIANTS/<variant>.safetensors`` in
    their place (what ``--weights`` of a retrained row loads); written once."""
    target = out / f"{variant}.safetensors"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        save_weights(target, {**shipped_modules(), **load_modules(VARIANTS / f"{variant}.safetensors")})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fresh = commands.add_parser("fresh-refiner", help="the shipped modules with an untrained refiner of w = W")
    fresh.add_argument("w", type=float)
    fresh.add_argument("out", type=Path)
    keep = commands.add_parser("keep", help="one module of a weights file, alone in another")
    keep.add_argument("module", choices=sorted(MODULE_CLASSES))
    keep.add_argument("source", type=Path)
    keep.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.command == "fresh-refiner":
        modules = shipped_modules()
        torch.manual_seed(0)
        modules["refiner"] = MODULE_CLASSES["refiner"].from_config({**modules["refiner"].config, "weight": args.w})
        save_weights(args.out, modules)
    else:
        save_weights(args.target, {args.module: load_modules(args.source)[args.module]})


if __name__ == "__main__":
    main()
