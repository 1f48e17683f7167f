"""The preflight: what each input needs and keeps, decided from its headers and first frame before any
model work, in both engines and in ``satecco probe``.

An input is refused (one line naming it) when its output would lose something that matters and no
setting says that is fine: bits the codec cannot store (``--allow-8bit`` accepts it), a non-square
sample aspect ratio in an output that cannot tag it, an audio or subtitle stream the output's container
cannot hold in any faithful form. Everything else it carries is kept, transcoded or dropped as
:func:`~satecco.video.streams.plan_streams` decides, and each transcoded or dropped stream becomes a
note in the run report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from satecco import storage
from satecco.errors import SateccoError, VideoError, input_error
from satecco.inputs import VideoSettings
from satecco.presets import MODEL_SCALE
from satecco.video.codecs import get_codec
from satecco.video.formats import open_input
from satecco.video.picture import Encoding, Picture, encoding_for
from satecco.video.read import VideoInfo, count_frames, probe
from satecco.video.streams import StreamPlan, plan_streams

#: Output containers that tag a non-square sample aspect ratio (the ``pasp`` box). PyAV 18 sets no
#: stream-level aspect ratio, which is all Matroska and WebM read; frame folders have none.
SAR_CONTAINERS = ("mp4", "mov")


@dataclass(frozen=True)
class Prepared:
    """One input, ready: its frame count and rate, how its frames are read (``deinterlace``) and written
    (``encoding``), what becomes of its other streams, and notes about its pictures."""

    frames: int
    frame_rate: Fraction
    encoding: Encoding
    deinterlace: bool
    streams: tuple[StreamPlan, ...] = ()
    picture_notes: tuple[str, ...] = ()
    excerpt: tuple[int, int] | None = None  # source frames [first, stop) upscaled; None: all

    @property
    def first(self) -> int:
        """The source frame the output's first frame is."""
        return self.excerpt[0] if self.excerpt else 0

    @property
    def notes(self) -> tuple[str, ...]:
        """For the report: each stream transcoded or dropped, then the notes about the pictures."""
        return tuple(plan.describe() for plan in self.streams if plan.action != "copy") + self.picture_notes


def prepare(local: str | Path, settings: VideoSettings, info: VideoInfo | None = None) -> Prepared:
    """The :class:`Prepared` of the local file or frame folder ``local``. Raises :class:`VideoError`
    naming ``local`` where it cannot be read or its output would lose something (the caller names the
    input as the user gave it)."""
    local = Path(local)
    info = info or probe(local)
    picture = info.picture
    try:
        encoding = encoding_for(picture, settings.codec, settings.encoder, settings.allow_fewer_bits)
        plans = _stream_plans(local, settings.codec)
    except ValueError as error:
        raise VideoError(local, f"refused: {error}") from error
    codec = get_codec(settings.codec)
    if picture.sar and not (codec.container in SAR_CONTAINERS and codec.carries_geometry):
        raise VideoError(local, f"refused: its sample aspect ratio {picture.sar} (non-square pixels) cannot be "
                                f"tagged in a {settings.codec} output; use --codec h264, hevc or prores "
                                f"(h264 --crf 0 for near-lossless)")
    if picture.display_matrix and not codec.carries_geometry:
        raise VideoError(local, f"refused: its display matrix (rotation) cannot be kept in an {settings.codec} "
                                f"output; use --codec h264, hevc or prores")
    try:
        encoding = replace(encoding, size=output_size(info.width, info.height, settings))
        codec.pix_fmt(encoding.bits, *(encoding.size or (2, 2)))  # a size it can store
    except ValueError as error:
        raise VideoError(local, f"refused: {error}") from error
    deinterlace = settings.deinterlace == "on" or (settings.deinterlace == "auto" and picture.interlaced)
    notes = _picture_notes(picture, settings.codec, deinterlace)
    if encoding.bits < picture.bits and picture.bits > 8:
        notes.append(f"{picture.bits}-bit samples written at {encoding.bits} bits (--allow-8bit)")
    if local.is_dir() and info.codec == "exr":
        notes.append("EXR linear light read as sRGB code values (the output is tagged sRGB)")
    frame_rate = settings.folder_rate if local.is_dir() else info.frame_rate
    total = count_frames(local, info)
    try:
        part = excerpt(total, frame_rate, settings)
    except ValueError as error:
        raise VideoError(local, f"refused: {error}") from error
    if part:
        notes.append(f"frames {part[0]} to {part[1] - 1} of {total} (--frames or --preview); its other streams "
                     f"and chapters cut to match")
    frames = part[1] - part[0] if part else total
    return Prepared(frames, frame_rate, encoding, deinterlace, tuple(plans), tuple(notes), part)


def excerpt(total: int, frame_rate: Fraction, settings: VideoSettings) -> tuple[int, int] | None:
    """The source frames ``[first, stop)`` of a ``total``-frame input that its output holds: those of
    ``settings.frames``, or ``settings.preview`` seconds from the middle; None for all of them.
    :class:`ValueError` where ``--frames`` starts past the end."""
    if settings.frames:
        first, stop = settings.frames
        if first >= total:
            raise ValueError(f"--frames starts at frame {first}, but it has {total} frames")
        return first, total if stop is None else min(stop, total)
    if settings.preview:
        wanted = min(total, max(1, round(settings.preview * frame_rate)))
        first = (total - wanted) // 2
        return first, first + wanted
    return None


def output_size(width: int, height: int, settings: VideoSettings, scale: int = MODEL_SCALE) -> tuple[int, int] | None:
    """The ``(width, height)`` a ``width`` x ``height`` input is written at, or ``None`` for the model's own
    ``scale`` x size: ``settings.outscale`` times the input, or ``settings.height`` lines, each capped at
    ``settings.max_height``. Both sides scale by one factor, so the display aspect (and a sample aspect
    ratio tag) stays right; sides are rounded to even numbers for h264's 4:2:0 where they are computed.
    :class:`ValueError` where the factor would exceed the model's."""
    factor = float(scale)
    if settings.outscale is not None:
        factor = settings.outscale
    elif settings.height is not None:
        factor = settings.height / height
    if settings.max_height is not None:
        factor = min(factor, settings.max_height / height)
    if factor > scale:
        raise ValueError(f"{height} lines to {round(height * factor)} is x{factor:.3g}, more than the model's "
                         f"x{scale}")
    if factor == scale:
        return None

    def side(pixels: int) -> int:
        exact = pixels * factor
        return max(2 * round(exact / 2), 2) if get_codec(settings.codec).subsampled else max(round(exact), 1)

    lines = settings.height if settings.height is not None and factor == settings.height / height else side(height)
    return side(width), lines


def prepare_input(source: str, settings: VideoSettings) -> Prepared | str:
    """:func:`prepare` of input ``source`` (local or URI, fetched into this machine's cache), or the
    one-line error naming it. Both engines' preflights run it; the Ray engine's as a task."""
    local = None
    try:
        local = storage.local_copy(source)
        return prepare(local, settings)
    except (SateccoError, OSError) as error:
        return input_error(source, error, local=local)


def _stream_plans(local: Path, codec: str) -> list[StreamPlan]:
    if local.is_dir():
        return []
    with open_input(local) as container:
        return plan_streams(container, codec)


def _picture_notes(picture: Picture, codec: str, deinterlace: bool) -> list[str]:
    notes = []
    if deinterlace:
        notes.append("deinterlaced (bwdif, one frame per frame)" if picture.interlaced
                     else "deinterlaced (bwdif) though not flagged interlaced (--deinterlace on)")
    elif picture.interlaced:
        notes.append("interlaced, left as it is (--deinterlace off): combing is upscaled too")
    if get_codec(codec).frames and picture.display_matrix:
        notes.append(f"a {codec} frame folder cannot hold the display matrix (rotation): frames stay as stored")
    if picture.hdr:
        notes.append(f"HDR ({picture.hdr}) tags kept; the model sees the {picture.hdr} code values as they are")
    return notes
