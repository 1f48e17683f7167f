"""What a source's pixels are (bit depth, colour tags, sample aspect ratio, display matrix, interlacing)
and how its output stores them (:class:`Encoding`): an output keeps all of it, or the input is refused.

Frames on the I/O side are ``(H, W, 3)`` RGB: ``uint8`` for 8-bit sources, ``uint16`` (all 16 bits
used, as FFmpeg's ``rgb48``) for deeper ones. FFmpeg's colour codes are kept as ints (its
``AVColorPrimaries``, ``AVColorTransferCharacteristic``, ``AVColorSpace``, ``AVColorRange`` enums).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import NamedTuple

import av
import numpy as np

#: The most bits per sample each output codec stores: libx264 in the installed wheel encodes 8 and 10
#: bits (``yuv420p10le``, High 10), FFV1 and PNG up to 16.
CODEC_BITS = {"h264": 10, "ffv1": 16, "png": 16}
#: AVColorSpace -> the name swscale (PyAV's ``reformat``) converts RGB to YUV with.
YUV_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
UNSPECIFIED = (0, 2)  # "reserved" and "unspecified" in FFmpeg's primaries, transfer and matrix enums
#: AVColorTransferCharacteristic of the HDR transfers: SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG).
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}
#: AVFieldOrder values.
FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "top first", 3: "bottom first",
                4: "top coded first, bottom shown first", 5: "bottom coded first, top shown first"}


class Colour(NamedTuple):
    """A stream's colour tags, FFmpeg's codes: primaries, transfer, matrix, range."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0

    @classmethod
    def of(cls, codec_context) -> Colour:
        return cls(codec_context.color_primaries, codec_context.color_trc, codec_context.colorspace,
                   codec_context.color_range)


UNTAGGED = Colour()


@dataclass(frozen=True)
class Picture:
    """What :func:`picture_of` learns from a video stream and its first frame."""

    pix_fmt: str = "rgb24"
    bits: int = 8
    colour: Colour = UNTAGGED
    sar: Fraction | None = None  # None: square pixels or unknown
    display_matrix: tuple[int, ...] | None = None  # 9 ints, FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    field_order: int = 0
    interlaced: bool = False  # the stream's field order or the first frame says so

    @property
    def hdr(self) -> str | None:
        """``"PQ"`` or ``"HLG"`` for an HDR transfer, else None."""
        return HDR_TRANSFERS.get(self.colour.transfer)


def format_bits(pix_fmt: str) -> int:
    """The most bits per sample of a pixel format (``yuv420p10le`` -> 10)."""
    return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)


def picture_of(stream, first) -> Picture:
    """The :class:`Picture` of video ``stream`` whose first decoded frame is ``first``."""
    codec = stream.codec_context
    sar = stream.sample_aspect_ratio or codec.sample_aspect_ratio
    matrix = next((bytes(d) for d in first.side_data if d.type.name == "DISPLAYMATRIX"), None)
    return Picture(pix_fmt=first.format.name, bits=format_bits(first.format.name), colour=Colour.of(first),
                   sar=Fraction(sar) if sar and sar != 1 else None,
                   display_matrix=tuple(int(v) for v in np.frombuffer(matrix, "<i4")) if matrix else None,
                   field_order=codec.field_order, interlaced=codec.field_order in (2, 3, 4, 5) or first.interlaced_frame)


@dataclass(frozen=True)
class Encoding:
    """How an output's frames are encoded: every part and seam of one video shares it (joining remuxes
    them without re-encoding). ``bits`` > 8 takes ``uint16`` frames; ``colour`` holds the source's tags;
    ``size``: the ``(width, height)`` written, where it is not the model's output size (``--outscale``,
    ``--height``, ``--max-height``): frames are scaled to it by the writer."""

    codec: str = "h264"
    crf: int = 18
    bits: int = 8
    colour: Colour = UNTAGGED
    size: tuple[int, int] | None = None

    @property
    def dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Encoding:
        fields = json.loads(text)
        size = fields.get("size")
        return cls(**{**fields, "colour": Colour(*fields["colour"]), "size": tuple(size) if size else None})


def encoding_for(picture: Picture, codec: str, crf: int, allow_fewer_bits: bool = False) -> Encoding:
    """The encoding that keeps ``picture``'s depth and colour tags in ``codec``.

    Raises :class:`ValueError` (the caller names the input) where ``codec`` stores fewer bits than the
    source has, unless ``allow_fewer_bits``: then it writes as many as ``codec`` stores."""
    bits = 8 if picture.bits <= 8 else picture.bits
    most = CODEC_BITS[codec]
    if bits > most:
        if not allow_fewer_bits:
            raise ValueError(f"its {picture.bits}-bit samples would be cut to {most} bits by {codec}; use "
                             f"--codec ffv1 or png (16 bits), or --allow-8bit to accept the loss")
        bits = most
    return Encoding(codec, crf, bits, picture.colour)


def yuv_tags(colour: Colour) -> tuple[str, str, Colour]:
    """For a YUV output of source tags ``colour``: the matrix and range names to convert RGB with, and
    the tags to write. The source's where swscale knows its matrix; BT.709 limited range for untagged
    sources (and for matrices swscale does not convert to)."""
    matrix = colour.matrix if colour.matrix in YUV_MATRICES else 1
    full = colour.range == 2
    primaries = 1 if colour.primaries in UNSPECIFIED else colour.primaries
    transfer = 1 if colour.transfer in UNSPECIFIED else colour.transfer
    return YUV_MATRICES[matrix], "JPEG" if full else "MPEG", Colour(primaries, transfer, matrix, 2 if full else 1)


def rgb_format(bits: int) -> str:
    """The PyAV format of ``(H, W, 3)`` RGB frames of ``bits``: ``rgb24`` (uint8) or ``rgb48le`` (uint16)."""
    return "rgb24" if bits <= 8 else "rgb48le"
