"""``satecco probe``: what ``satecco upscale`` would do with each input, before any model work.

For each input: its video stream (codec, pixel format and bit depth, size in and out, frame count,
exact frame rate and time base, sample aspect ratio, colour tags, field order), every other stream and
whether the output keeps it, the output path, and what would be lost or refused. Reads headers and the
first frame only (and counts packets where the container does not state the frame count).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from satecco import storage
from satecco.errors import SateccoError, input_error
from satecco.video.formats import open_input, video_stream
from satecco.video.read import count_frames, probe

#: FFmpeg's AVFieldOrder values.
FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "top first", 3: "bottom first", 4: "top coded first, bottom shown first",
                5: "bottom coded first, top shown first"}
#: FFmpeg's AVColorTransferCharacteristic values of the HDR transfers: SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG).
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}


def describe_input(source: str, target: str | None, scale: int) -> list[str]:
    """Lines describing ``source`` and what upscaling it ``scale`` times to ``target`` keeps or loses."""
    try:
        local = storage.local_copy(source)
        info = probe(local)
        frames = count_frames(local, info)
    except (SateccoError, OSError) as error:
        return [f"{source}", f"  error: {input_error(source, error)}"]
    lines = [source, f"  output: {target}"]
    if Path(local).is_dir():
        lines.append(f"  video: png frames {info.width}x{info.height} -> {info.width * scale}x{info.height * scale}, "
                     f"{frames} frames at {info.frame_rate} fps (a frame folder's rate)")
        return lines
    with open_input(Path(local)) as container:
        stream = video_stream(container, Path(local))
        lines += _video_lines(stream, (info.width, info.height), scale, frames, info.frame_rate)
        first_audio = next((s.index for s in container.streams.audio), None)
        for other in container.streams:
            if other.index == stream.index:
                continue
            kept = "copied" if other.index == first_audio else "dropped (only the first audio stream is copied)"
            language = other.metadata.get("language", "und")
            lines.append(f"  {other.type} #{other.index}: {other.codec_context.name} ({language}) - {kept}")
    return lines


def _video_lines(stream, size: tuple[int, int], scale: int, frames: int, frame_rate: Fraction) -> list[str]:
    width, height = size
    codec = stream.codec_context
    pix_fmt = codec.pix_fmt or "unknown"
    bits = max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8) if codec.pix_fmt else 8
    sar = stream.sample_aspect_ratio
    average, guessed = stream.average_rate, stream.guessed_rate
    lines = [f"  video: {codec.name} {pix_fmt} ({bits}-bit) {width}x{height} -> {width * scale}x{height * scale}, "
             f"{frames} frames at {frame_rate} fps, time base {stream.time_base}, "
             f"SAR {sar or '1:1'}, colour primaries/transfer/matrix/range {codec.color_primaries}/"
             f"{codec.color_trc}/{codec.colorspace}/{codec.color_range} (FFmpeg's codes), field order "
             f"{FIELD_ORDERS.get(codec.field_order, codec.field_order)}"]
    if bits > 8:
        lines.append(f"  loses: {bits}-bit samples are written as 8-bit")
    if sar and sar != 1:
        lines.append(f"  loses: the sample aspect ratio {sar} (the output is tagged square pixels)")
    if average and guessed and abs(average / guessed - 1) > Fraction(1, 100):
        lines.append(f"  loses: variable frame timing (average {average} fps, written at {frame_rate} fps)")
    if codec.field_order in (2, 3, 4, 5):
        lines.append(f"  loses: interlacing is not undone (fields {FIELD_ORDERS[codec.field_order]})")
    if codec.color_trc in HDR_TRANSFERS:
        lines.append(f"  loses: the {HDR_TRANSFERS[codec.color_trc]} transfer (the output is tagged BT.709)")
    return lines
