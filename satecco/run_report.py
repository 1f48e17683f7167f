"""``OUTDIR/satecco-report.html``: the run report to look at, beside the JSON lines of
``satecco-report.jsonl``.

Per video: a still (the same region of the middle frame of input and output, the input enlarged by
pixel repetition to the output's scale, so that what the model added shows), status, frames, seconds,
notes and the error of a failed one; and for the Ray engine the busy time of each pipeline stage as a
bar chart. One self-contained file (images as ``data:`` URIs), so that it can be opened anywhere, logged
as an artifact, or written to an object store like the outputs.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from satecco import storage
from satecco.inputs import VideoResult

HTML_REPORT = "satecco-report.html"
CROP = 48  # input pixels: the still's region is at most this wide and high
STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
         "padding:.3em .6em;vertical-align:top}td.failed{color:#b00}img{image-rendering:pixelated;margin-right:.3em}"
         ".bar{background:#4a7;height:1em;display:inline-block;margin-right:.4em}")


def png_uri(image: np.ndarray) -> str:
    """``(H, W, 3)`` uint8 RGB as a ``data:image/png`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def still(source: str, output: str, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The centre region of the middle frame of ``source`` (enlarged to the output's scale by pixel
    repetition) and of ``output``: two ``(h, w, 3)`` uint8 images of one size."""
    from satecco.video.read import read_frames

    middle = frames // 2
    (lr,) = read_frames(storage.local_copy(source), middle, middle + 1)
    (hr,) = read_frames(storage.local_copy(output), middle, middle + 1)
    scale = hr.shape[0] / lr.shape[0]
    size = min(CROP, lr.shape[0], lr.shape[1])
    y, x = (lr.shape[0] - size) // 2, (lr.shape[1] - size) // 2
    region = hr[round(y * scale):round((y + size) * scale), round(x * scale):round((x + size) * scale)]
    rows = (np.arange(region.shape[0]) / scale).astype(int) + y
    cols = (np.arange(region.shape[1]) / scale).astype(int) + x
    return lr[np.ix_(rows, cols)], region


def _video_row(result: VideoResult) -> str:
    cells = [html.escape(result.input), html.escape(result.output or "—")]
    picture = ""
    if result.status == "ok":
        try:
            before, after = still(result.input, result.output, result.frames)
            picture = (f'<img src="{png_uri(before)}" alt="input" title="input, enlarged">'
                       f'<img src="{png_uri(after)}" alt="output" title="output">')
        except Exception as error:  # noqa: BLE001  (a still that cannot be made must not fail the run)
            picture = f"no still: {html.escape(str(error))}"
    notes = "<br>".join(html.escape(n) for n in result.notes)
    error = f'<td class="failed">{html.escape(result.error)}</td>' if result.error else "<td></td>"
    return (f"<tr><td>{cells[0]}</td><td>{cells[1]}</td><td>{picture}</td><td>{result.status}</td>"
            f"<td>{result.frames}</td><td>{result.seconds:.1f}</td><td>{notes}</td>{error}</tr>")


def busy_chart(busy: dict[str, float]) -> str:
    """Busy seconds per pipeline stage as horizontal bars."""
    most = max(busy.values(), default=0) or 1
    return "".join(f'<div><span class="bar" style="width:{300 * value / most:.0f}px"></span>'
                   f"{html.escape(name)}: {value:.1f} s</div>" for name, value in busy.items())


def write_run_report(outdir: str | Path, results: list[VideoResult], busy: dict[str, float] | None = None) -> str:
    """Write ``OUTDIR/satecco-report.html`` for ``results`` (and the Ray engine's ``busy`` seconds per
    stage); returns its path."""
    counts = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in ("ok", "skipped", "failed"))
    frames = sum(r.frames for r in results if r.status == "ok")
    stages = f"<h2>Busy time per stage</h2>{busy_chart(busy)}" if busy else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>satecco run</title><style>{STYLE}</style>"
            f"</head><body><h1>satecco run</h1><p>{len(results)} inputs: {counts}; {frames} frames written</p>"
            f"{stages}<h2>Videos</h2><table><tr><th>input</th><th>output</th><th>still (input | output)</th>"
            f"<th>status</th><th>frames</th><th>seconds</th><th>notes</th><th>error</th></tr>"
            + "".join(_video_row(r) for r in results) + "</table></body></html>\n")
    path = storage.join(str(outdir), HTML_REPORT)
    with storage.atomic_output(path) as partial:
        Path(partial).write_text(page)
    return path
