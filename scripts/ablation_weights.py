"""Weights files for the retrained rows of docs/ablation.md: each variant (``scripts/ablation_variants/``)
holds only the SATeCo modules it retrained; :func:`compose` puts them in place of the shipped default's.

    .venv/bin/python scripts/ablation_weights.py fresh OUT MODULE... [--set MODULE.KEY=VALUE ...]
        # the shipped modules with these ones untrained, their configs changed as --set says (VALUE in JSON)
    .venv/bin/python scripts/ablation_weights.py keep MODULE[,MODULE...] SRC DST   # these modules of SRC alone, into DST
"""

from __future__ import annotations

import argparse
import json
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


def variant_file(variant: str) -> Path:
    return VARIANTS / f"{variant}.safetensors"


def compose(variant: str, out: Path) -> Path:
    """``out/<variant>.safetensors``: the shipped modules with those of ``VARIANTS/<variant>.safetensors`` in
    their place (what ``--weights`` of a retrained row loads); rewritten each time, so a retrained variant
    is never run from an earlier composition."""
    target = out / f"{variant}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_weights(target, {**shipped_modules(), **load_modules(variant_file(variant))})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fresh = commands.add_parser("fresh", help="the shipped modules with these ones untrained (seed 0)")
    fresh.add_argument("out", type=Path)
    fresh.add_argument("modules", nargs="+", choices=sorted(MODULE_CLASSES))
    fresh.add_argument("--set", action="append", default=[], metavar="MODULE.KEY=VALUE",
                       help="a config value of a fresh module, in JSON (e.g. refiner.weight=0)")
    keep = commands.add_parser("keep", help="some modules of a weights file, alone in another")
    keep.add_argument("modules", help="module names, comma-separated")
    keep.add_argument("source", type=Path)
    keep.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.command == "fresh":
        modules = shipped_modules()
        changes = {name: {} for name in args.modules}
        for item in args.set:
            target, _, value = item.partition("=")
            name, _, key = target.partition(".")
            if name not in changes or not key or not value:
                parser.error(f"--set {item}: expected MODULE.KEY=VALUE for one of {args.modules}")
            changes[name][key] = json.loads(value)
        torch.manual_seed(0)
        for name, change in changes.items():
            modules[name] = MODULE_CLASSES[name].from_config({**modules[name].config, **change})
        save_weights(args.out, modules)
    else:
        source = load_modules(args.source)
        save_weights(args.target, {name: source[name] for name in args.modules.split(",")})


if __name__ == "__main__":
    main()
