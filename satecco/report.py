"""The visual report of ``satecco evaluate``: ``REPORT_DIR/index.html`` and its PNG images.

For every clip: side-by-side crops of the same region of the middle frame (ground truth and each
method, enlarged with nearest-neighbour so that pixels stay pixels), temporal profiles (the row through
the region's centre in every frame stacked top to bottom: an x–t slice, where flicker shows as
horizontal streaks and stable content as smooth vertical lines), per-frame metric plots (matplotlib)
and the metric table; at the top, the mean of every method. Without ground truth the crops and profiles
are the methods' alone and the plots those of the no-reference metrics. Images live in ``REPORT_DIR/images/``;
the page links them relatively, so the folder can be moved or logged as an artifact whole.
:func:`choose_region` picks the crop where the clips are decoded (:func:`satecco.evaluate.evaluate_clip`).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satecco.storage import atomic_output

if TYPE_CHECKING:
    from satecco.evaluate import ClipResult

#: Whether a higher value is better, for the tables.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "clipiqa": True}
CROP_SIZE = 96  # HR pixels of the crops (smaller frames get a smaller crop)
DISPLAY = 192  # crops are enlarged by an integer factor to at least this many pixels
PROFILE_ROWS = 96  # short clips' profiles repeat each frame's row to at least this height
STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0}"
         "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td.na{color:#999}"
         ".row{display:flex;flex-wrap:wrap;gap:.8em}figure{margin:0}figcaption{text-align:center}"
         "img{image-rendering:pixelated}")


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_png(path: Path, image: np.ndarray) -> None:
    """``(H, W, 3)`` uint8 RGB -> PNG file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")


def choose_region(frame: np.ndarray) -> tuple[int, int, int]:
    """The report's crop ``(y, x, size)``: the ``size``² window (at most :data:`CROP_SIZE`, at most half the
    frame) with the most gradient energy in ``frame`` ``(H, W, 3)``, on a grid of half-window steps."""
    height, width = frame.shape[:2]
    size = max(1, min(CROP_SIZE, height // 2, width // 2))
    luma = frame.astype(np.float64).mean(-1)
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.abs(np.diff(luma, axis=1))
    energy[1:, :] += np.abs(np.diff(luma, axis=0))
    step = max(size // 2, 1)
    best, where = -1.0, (0, 0)
    for y in sorted({*range(0, height - size + 1, step), height - size}):
        for x in sorted({*range(0, width - size + 1, step), width - size}):
            total = energy[y:y + size, x:x + size].sum()
            if total > best:
                best, where = total, (y, x)
    return (*where, size)


def enlarge(image: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(h, w, 3)`` by the smallest integer factor reaching ``size``."""
    factor = max(1, math.ceil(size / max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def plot_per_frame(path: Path, metric: str, series: dict[str, list[float]], first_frame: dict[str, int]) -> None:
    """One line per method of ``metric`` over frame indices; ``first_frame`` gives each series' first index."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(5, 2.4), dpi=100)
    axes = figure.subplots()
    for method, values in series.items():
        start = first_frame[method]
        axes.plot(range(start, start + len(values)), values, label=method, linewidth=1.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.set_xlabel("frame")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def _cell(value) -> str:
    if value is None:
        return "<td class='na'>n/a</td>"
    return f"<td>{value:.5g}</td>" if math.isfinite(value) else f"<td>{value}</td>"


def _table(rows: list[tuple[str, dict]], metrics: list[str], unavailable: dict[str, str]) -> str:
    shown = [m for m in metrics if m not in unavailable]
    head = "".join(f"<th>{html.escape(m)} {'↑' if HIGHER_IS_BETTER.get(m) else '↓'}</th>" for m in shown)
    body = "".join(f"<tr><th>{html.escape(label)}</th>{''.join(_cell(values.get(m)) for m in shown)}</tr>"
                   for label, values in rows)
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(report_dir: str | Path, summary: dict, results: list[ClipResult]) -> Path:
    """Write ``index.html`` and ``images/*.png`` for ``summary``
    (:func:`satecco.evaluation_summary.summarize`) and the ``results`` it came from; returns the page's
    path. The images come first and the page last, atomically: a page that exists has all its images."""
    root = Path(report_dir)
    parts = _overview(summary)
    for clip in dict.fromkeys(r.clip for r in results if not r.error):
        ok = {r.method: r for r in results if r.clip == clip and not r.error}
        parts += _clip_section(root, clip, ok, summary["metrics"], summary["unavailable"])
    (root / "images").mkdir(parents=True, exist_ok=True)
    path = root / "index.html"
    with atomic_output(path) as partial:
        partial.write_text(_page(parts))
    return path


def _overview(summary: dict) -> list[str]:
    """The top of the page: the settings, every method's means, unavailable metrics and failed clips."""
    conventions, methods, unavailable = summary["conventions"], list(summary["methods"]), summary["unavailable"]
    reference = (f"ground truth: <code>{html.escape(summary['gt'])}</code>" if summary["gt"] is not None
                 else "no ground truth: no-reference metrics only")
    parts = [f"<h1>satecco evaluate</h1><p>{reference}; "
             f"averaging: {conventions['averaging']}; crop_border "
             f"{conventions['crop_border']}; Y channel: {conventions['y_channel']}</p>",
             "<h2>Mean over clips</h2>",
             _table([(m, summary["methods"][m]["mean"]) for m in methods], summary["metrics"], unavailable)]
    if unavailable:
        items = "".join(f"<li><b>{html.escape(m)}</b>: {html.escape(r)}</li>" for m, r in unavailable.items())
        parts.append(f"<p>Unavailable metrics (no number is shown for them):</p><ul>{items}</ul>")
    failed = [(m, c, e) for m in methods for c, e in summary["methods"][m]["failed"].items()]
    if failed:
        items = "".join(f"<li>{html.escape(m)} / {html.escape(c)}: <code>{html.escape(e)}</code></li>"
                        for m, c, e in failed)
        parts.append(f"<h2>Failed clips</h2><ul class='failed'>{items}</ul>")
    return parts


def _clip_section(root: Path, clip: str, ok: dict[str, ClipResult], metrics: list[str],
                  unavailable: dict[str, str]) -> list[str]:
    """One clip's heading, metric table, crops, temporal profiles and per-frame plots (``ok``: method ->
    its result for ``clip``); writes the clip's images under ``root/images``."""
    stem = _name(clip)
    return [f"<h2 id='{html.escape(stem)}'>{html.escape(clip)}</h2>",
            _table([(m, r.values) for m, r in ok.items()], metrics, unavailable),
            *_crops_and_profiles(root, stem, ok),
            _per_frame_plots(root, stem, ok, metrics)]


def _crops_and_profiles(root: Path, stem: str, ok: dict[str, ClipResult]) -> list[str]:
    """The ground truth's (if any) and every method's crop of the middle frame and x-t profile, side by side."""
    first = next(iter(ok.values()))
    y, x, size = first.region
    figures = [("ground truth", first.gt_crop, first.gt_profile, "gt")] if first.gt_crop is not None else []
    figures += [(m, r.crop, r.profile, f"m-{_name(m)}") for m, r in ok.items()]
    crops, profiles = [], []
    repeat = max(1, math.ceil(PROFILE_ROWS / first.frames))
    for label, crop, profile, key in figures:
        crop_file, profile_file = f"images/{stem}-crop-{key}.png", f"images/{stem}-xt-{key}.png"
        write_png(root / crop_file, enlarge(crop))
        write_png(root / profile_file, np.repeat(profile, repeat, axis=0))
        alt = html.escape(label)
        crops.append(f"<figure><img src='{crop_file}' alt='crop {alt}'><figcaption>{alt}</figcaption></figure>")
        profiles.append(f"<figure><img src='{profile_file}' alt='x-t profile {alt}'>"
                        f"<figcaption>{alt}</figcaption></figure>")
    return [f"<h3>Crop of frame {first.frames // 2}, {size}x{size} px at x={x}, y={y}</h3>"
            f"<div class='row'>{''.join(crops)}</div>",
            f"<h3>Temporal profile: row y={y + size // 2}, frames top to bottom"
            f"{f' ({repeat} px each)' if repeat > 1 else ''}</h3>"
            f"<div class='row'>{''.join(profiles)}</div>"]


def _per_frame_plots(root: Path, stem: str, ok: dict[str, ClipResult], metrics: list[str]) -> str:
    """One plot per metric that has per-frame values, every method in it."""
    plots = []
    for metric in [m for m in metrics if any(m in r.per_frame for r in ok.values())]:
        series = {m: r.per_frame[metric] for m, r in ok.items() if metric in r.per_frame}
        starts = {m: ok[m].frames - len(series[m]) for m in series}  # pair metrics start at frame 1
        plot_file = f"images/{stem}-plot-{_name(metric)}.png"
        plot_per_frame(root / plot_file, metric, series, starts)
        plots.append(f"<figure><img src='{plot_file}' alt='{html.escape(metric)} per frame'></figure>")
    return f"<h3>Per frame</h3><div class='row'>{''.join(plots)}</div>"


def _page(parts: list[str]) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>satecco evaluate</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
