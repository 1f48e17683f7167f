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

import numpy as np

from satecco.video.codecs import CODEC_TABLE, DEFAULT_ENCODER, EncoderSettings, format_bits, get_codec

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
    bits: int = 8
    colour: Colour = UNTAGGED
    size: tuple[int, int] | None = None
    encoder: EncoderSettings = DEFAULT_ENCODER

    @property
    def dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Encoding:
        fields = json.loads(text)
        size, encoder = fields.get("size"), fields["encoder"]
        encoder["options"] = tuple(tuple(pair) for pair in encoder["options"])
        return cls(**{**fields, "colour": Colour(*fields["colour"]), "size": tuple(size) if size else None,
                      "encoder": EncoderSettings(**encoder)})


def encoding_for(picture: Picture, codec: str, encoder: EncoderSettings = DEFAULT_ENCODER,
                 allow_fewer_bits: bool = False) -> Encoding:
    """The encoding that keeps ``picture``'s depth and colour tags in ``codec`` (at ``encoder.pix_fmt``'s
    depth where one is given).

    Raises :class:`ValueError` (the caller names the input) where the output stores fewer bits than the
    source has, unless ``allow_fewer_bits``: then it writes as many as the output stores."""
    bits = 8 if picture.bits <= 8 else min(picture.bits, 16)
    most = encoder.most_bits(get_codec(codec))
    if bits > most:
        if not allow_fewer_bits:
            deep = [c.name for c in CODEC_TABLE.values() if c.most_bits >= bits]
            raise ValueError(f"its {picture.bits}-bit samples would be cut to {most} bits by {codec}"
                             f"{' ' + encoder.pix_fmt if encoder.pix_fmt else ''}; use --codec "
                             f"{' or '.join(deep)}, or --allow-8bit to accept the loss")
        bits = most
    return Encoding(codec, bits, picture.colour, encoder=encoder)


def yuv_tags(colour: Colour, full_range: bool = False) -> tuple[str, str, Colour]:
    """For a YUV output of source tags ``colour``: the matrix and range names to convert RGB with, and
    the tags to write. The source's where swscale knows its matrix; BT.709 limited range for untagged
    sources (and for matrices swscale does not convert to); BT.601 at full range for ``full_range``
    (JPEG, whose files have no tags: readers assume it)."""
    matrix = 5 if full_range else colour.matrix if colour.matrix in YUV_MATRICES else 1
    full = colour.range == 2 or full_range
    primaries = 1 if colour.primaries in UNSPECIFIED else colour.primaries
    transfer = 1 if colour.transfer in UNSPECIFIED else colour.transfer
    return YUV_MATRICES[matrix], "JPEG" if full else "MPEG", Colour(primaries, transfer, matrix, 2 if full else 1)


def rgb_format(bits: int) -> str:
    """The PyAV format of ``(H, W, 3)`` RGB frames of ``bits``: ``rgb24`` (uint8) or ``rgb48le`` (uint16)."""
    return "rgb24" if bits <= 8 else "rgb48le"
