"""``satecco probe``: what ``satecco upscale`` would do with each input, before any model work.

For each input, from the preflight (:func:`satecco.preflight.prepare`, which ``upscale`` runs too): its
video stream (codec, pixel format and bit depth in and out, size in and out, frame count, exact frame
rate, time base and whether the timing is variable, sample aspect ratio, rotation, colour tags, field
order and deinterlacing), every other stream and what becomes of it (copied, transcoded, dropped), the
output path, and the refusal where there is one. Reads headers, the first frame and the video packets.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from satecco import storage
from satecco.errors import SateccoError, input_error
from satecco.inputs import VideoSettings
from satecco.preflight import Prepared, prepare
from satecco.video.formats import open_input, video_stream
from satecco.video.picture import FIELD_ORDERS, Picture
from satecco.video.read import VideoInfo, probe
from satecco.video.streams import frame_times


@dataclass(frozen=True)
class Described:
    """What ``satecco probe`` prints about one input, and what the dry run totals: the frames and the
    ``(width, height)`` it would write (``None`` when it is refused or unreadable)."""

    lines: list[str]
    frames: int = 0
    size: tuple[int, int] | None = None


def describe_input(source: str, target: str | None, scale: int, settings: VideoSettings) -> Described:
    """Lines describing ``source`` and what upscaling it ``scale`` times to ``target`` keeps, changes or
    refuses; a refused or unreadable input gives an ``error:`` line."""
    local = None
    try:
        local = storage.local_copy(source)
        info = probe(local)
        prepared = prepare(local, settings, info)
    except (SateccoError, OSError) as error:
        return Described([f"{source}", f"  error: {input_error(source, error, local=local)}"])
    lines = [source, f"  output: {target}"]
    written = prepared.encoding.size or (info.width * scale, info.height * scale)
    size = f"{info.width}x{info.height} -> {info.width * scale}x{info.height * scale}" + \
        (f" -> {written[0]}x{written[1]} (Lanczos)" if prepared.encoding.size else "")
    if Path(local).is_dir():
        lines.append(f"  video: {info.codec} frames ({info.picture.bits}-bit) {size}, {prepared.frames} frames at "
                     f"{prepared.frame_rate} fps (a frame folder's rate: --fps)")
    else:
        lines.append(_video_line(local, info, prepared, size))
        lines += [f"  {plan.describe()}" for plan in prepared.streams]
    return Described(lines + [f"  note: {note}" for note in prepared.picture_notes], prepared.frames, written)


def _video_line(local: str, info: VideoInfo, prepared: Prepared, size: str) -> str:
    picture: Picture = info.picture
    with open_input(Path(local)) as container:
        stream = video_stream(container, Path(local))
        codec, time_base = stream.codec_context.name, stream.time_base
        timing = _timing(frame_times(container), time_base, info.frame_rate)
    primaries, transfer, matrix, colour_range = picture.colour
    rotation = "none" if not picture.display_matrix else "kept (display matrix)"
    field_order = FIELD_ORDERS.get(picture.field_order, picture.field_order)
    return (f"  video: {codec} {picture.pix_fmt} ({picture.bits}-bit -> {prepared.encoding.bits}-bit) {size}, "
            f"{prepared.frames} frames at {info.frame_rate} fps, time base {time_base}, {timing}, "
            f"SAR {picture.sar or '1:1'}, rotation {rotation}, colour primaries/transfer/matrix/range "
            f"{primaries}/{transfer}/{matrix}/{colour_range} (FFmpeg's codes, kept), field order {field_order}"
            f"{', deinterlaced' if prepared.deinterlace else ''}")


def _timing(times: list[int] | None, time_base: Fraction, frame_rate: Fraction) -> str:
    """``constant timing`` or ``variable timing (frame gaps a-b ms, kept)``."""
    if not times or len(times) < 2:
        return "constant timing"
    gaps = {b - a for a, b in zip(times, times[1:], strict=False)}
    if max(gaps) - min(gaps) <= 1:  # a tick of rounding (matroska's milliseconds)
        return "constant timing"
    low, high = (float(g * time_base * 1000) for g in (min(gaps), max(gaps)))
    return f"variable timing (frame gaps {low:.1f}-{high:.1f} ms, kept)"
