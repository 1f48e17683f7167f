"""What ``scripts/ablation.py`` runs and measures: its rows (``satecco upscale`` options, and two
inference-time swaps of the refiner's inputs), the clips they run on, and the metrics of every output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from satecco.cli import main as satecco
from satecco.evaluate import ClipPair, EvalSettings, evaluate_locally
from satecco.models.refiner import VideoRefiner

METRICS = ("psnr", "ssim", "tof", "warping_error")
# The tables measure the model's own output: the default colour fix is off but in its own rows.
COMMON = ("--engine", "local", "--codec", "ffv1", "--no-progress", "--overwrite", "--color-fix", "none")
OFF_IN_VAE = ("--no-sfa", "vae", "--no-tfa", "vae")


@dataclass(frozen=True)
class Row:
    """One measured row: ``satecco upscale`` options, what the refiner is fed (``refiner``: ``None``
    as trained, ``"xd"`` skip it and output ``X_d``, ``"xu"`` feed it ``(X_u, X_u)``), and for a retrained
    row the variant whose modules replace the shipped ones (``scripts/ablation_variants/<variant>.safetensors``)."""

    key: str
    label: str
    options: tuple[str, ...]
    refiner: str | None = None
    variant: str | None = None


ROWS = (
    Row("bicubic", "bicubic ×4", ("--method", "bicubic")),
    Row("upscaler", "X_u: upscaler, 6-frame windows (TMSA)", ("--method", "upscaler")),
    Row("upscaler-1", "X_u: upscaler, single frames", ("--method", "upscaler", "--window", "1",
                                                         "--window-overlap", "0")),
    # Retrained (scripts/train_pixelshuffle_upscaler.sh, scripts/train_refiner_w_variants.sh).
    Row("pixelshuffle", "X_u: PixelShuffle upscaler (retrained without TMSA)", ("--method", "upscaler"),
        variant="pixelshuffle-upscaler"),
    Row("framewise", "frame-wise SATeCo (TFA off, 1-frame windows)", ("--method", "framewise")),
    Row("A", "A: no SFA/TFA anywhere", ("--method", "satecco", "--no-sfa", "unet", "--no-tfa", "unet") + OFF_IN_VAE),
    Row("B", "B: SFA in UNet", ("--method", "satecco", "--no-tfa", "unet") + OFF_IN_VAE),
    Row("C", "C: SFA + TFA in UNet", ("--method", "satecco") + OFF_IN_VAE),
    Row("satecco", "D: SFA + TFA in UNet and VAE (SATeCo, the trained w)", ("--method", "satecco")),
    Row("A-retrained", "A, retrained", ("--method", "satecco", "--no-sfa", "unet", "--no-tfa", "unet") + OFF_IN_VAE,
        variant="table2-A"),
    Row("B-retrained", "B, retrained", ("--method", "satecco", "--no-tfa", "unet") + OFF_IN_VAE, variant="table2-B"),
    Row("C-retrained", "C, retrained", ("--method", "satecco") + OFF_IN_VAE, variant="table2-C"),
    Row("w0", "refiner w = 0", ("--method", "satecco", "--refiner-w", "0")),
    Row("w1", "refiner w = 1.0", ("--method", "satecco", "--refiner-w", "1")),
    Row("w0-retrained", "refiner w = 0, retrained", ("--method", "satecco"), variant="refiner-w0"),
    Row("w1-retrained", "refiner w = 1.0, retrained", ("--method", "satecco"), variant="refiner-w1"),
    Row("xd", "X_d: VAE decoder output, no refiner", ("--method", "satecco"), refiner="xd"),
    Row("xu-for-xd", "X_u in place of X_d: refiner(X_u, X_u)", ("--method", "satecco"), refiner="xu"),
    # The seam cost of tiling: SFA's statistics are taken per tile (docs/methods.md).
    Row("tile24", "SATeCo, --tile 24 --tile-overlap 4", ("--method", "satecco", "--tile", "24", "--tile-overlap", "4")),
    Row("tile16", "SATeCo, --tile 16 --tile-overlap 4", ("--method", "satecco", "--tile", "16", "--tile-overlap", "4")),
    # Whether a colour fix should be on by default (issue 15): measured here, on footage training never saw.
    Row("wavelet", "SATeCo, --color-fix wavelet", ("--method", "satecco", "--color-fix", "wavelet")),
    Row("adain", "SATeCo, --color-fix adain", ("--method", "satecco", "--color-fix", "adain")),
)
BY_KEY = {row.key: row for row in ROWS}


@contextmanager
def refiner_inputs(mode: str) -> Iterator[None]:
    """Within the block every :class:`VideoRefiner` returns ``X_d`` unchanged (``mode`` ``"xd"``) or refines
    ``(X_u, X_u)`` (``"xu"``): inference-time swaps for two ablation rows, library code untouched."""
    original = VideoRefiner.forward

    def forward(self, upscaled, decoded):
        return decoded if mode == "xd" else original(self, upscaled, upscaled)

    VideoRefiner.forward = forward
    try:
        yield
    finally:
        VideoRefiner.forward = original


@dataclass
class Clip:
    """A prepared clip: its ground truth and LR input written under ``out/<name>/gt`` and ``out/<name>/lr``."""

    name: str
    source: Path
    crop: str | None
    frames: int
    hr_size: tuple[int, int]
    lr_size: tuple[int, int]


def variants_folder(out: Path) -> Path:
    """Where the ``--weights`` files of the retrained rows are composed (``ablation_weights.compose``)."""
    return out / "variants"


def command(clip: Clip, row: Row, out: Path) -> list[str]:
    """The ``satecco upscale`` arguments of ``row`` on ``clip``."""
    weights = ("--weights", str(variants_folder(out) / f"{row.variant}.safetensors")) if row.variant else ()
    return ["upscale", str(out / clip.name / "lr" / f"{clip.name}.mkv"), "-o", str(out / clip.name / row.key),
            *COMMON, *row.options, *weights]


def run_rows(clip: Clip, rows: list[Row], out: Path, reuse: bool) -> dict[str, float]:
    """Upscale ``clip`` with every row; the wall seconds of the run that made each output (kept in
    ``out/<clip>/timings.json``, so that a reused output keeps its time)."""
    timings = out / clip.name / "timings.json"
    seconds = json.loads(timings.read_text()) if reuse and timings.is_file() else {}
    for row in rows:
        target = out / clip.name / row.key / f"{clip.name}.mkv"
        if reuse and target.is_file() and row.key in seconds:
            print(f"{target}: reused", flush=True)
            continue
        started = time.perf_counter()
        with refiner_inputs(row.refiner) if row.refiner else nullcontext():
            code = satecco(command(clip, row, out))
        seconds[row.key] = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"{clip.name}: row {row.key} failed ({code})")
        print(f"{clip.name} {row.key}: {seconds[row.key]:.1f} s", flush=True)
        timings.write_text(json.dumps(seconds, indent=1))
    return seconds


def warm_up(clip: Clip, out: Path) -> None:
    """One untimed SATeCo run, so that the first timed row does not pay for importing torch and the models."""
    code = satecco(command(clip, Row("warm-up", "", ("--method", "satecco")), out))
    if code != 0:
        raise SystemExit(f"{clip.name}: the warm-up run failed ({code})")


def measure(clip: Clip, rows: list[Row], out: Path, seconds: dict[str, float]) -> dict[str, dict[str, float]]:
    """PSNR, SSIM, tOF, warping error and seconds per output frame of every row on ``clip``."""
    gt = str(out / clip.name / "gt" / f"{clip.name}.mkv")
    pairs = [ClipPair(row.key, clip.name, str(out / clip.name / row.key / f"{clip.name}.mkv"), gt) for row in rows]
    results = evaluate_locally(pairs, EvalSettings(metrics=METRICS))
    measured = {}
    for result in results:
        if result.error or result.unavailable:
            raise SystemExit(f"{clip.name} {result.method}: {result.error or result.unavailable}")
        measured[result.method] = {**result.values, "seconds": seconds[result.method] / clip.frames}
    return measured
