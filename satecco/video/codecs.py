"""The output codecs: one :class:`Codec` per ``--codec`` value, saying which FFmpeg encoder, container
and pixel formats it uses and which rate controls it takes, and :class:`EncoderSettings` (``--crf``,
``--encoder-preset``, ``--bitrate``, ``--pix-fmt``, ``--encoder-option``) turned into the encoder's options.

The table holds the encoders of the installed PyAV wheel that suit delivery or archiving: H.264,
HEVC and AV1 (SVT-AV1) in ``.mp4``, VP9 in ``.webm``, ProRes in ``.mov``, FFV1 in ``.mkv`` (lossless),
and frame folders of PNG, TIFF, JPEG or DPX files. Left out: libaom and rav1e (not in the wheel), EXR
output (its encoder takes linear-light floats; our frames are display code values), and the
intermediate codecs that FFV1 does better for archives (utvideo, huffyuv, qtrle) or that constrain
frame sizes (DNxHD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import av


@dataclass(frozen=True)
class Codec:
    """One output codec. ``depths``: the pixel format stored for frames of each depth (frames of
    ``b`` bits go to the smallest depth >= ``b``); ``crf``: the constant-quality option, its range and
    default (None: the codec has none); ``preset``: the option ``--encoder-preset`` sets, and the choices it takes."""

    name: str
    encoder: str
    suffix: str  # of the output file, or of each frame in a frame folder
    container: str | None  # FFmpeg's muxer; None: a folder of frames
    depths: dict[int, str]
    decoders: tuple[str, ...]  # the names a stream of this codec is read back with
    rgb: bool = False  # stores RGB as it is (no conversion to YUV)
    crf: tuple[str, int, int, int] | None = None  # option, lowest, highest, default
    preset: tuple[str, tuple[str, ...]] | None = None
    options: dict[str, str] = field(default_factory=dict)  # always set, before the user's
    full_range: bool = False  # JPEG: YUV at full range
    tag: str | None = None  # the container's codec tag, where FFmpeg's default is not what players need
    #: Whether the join can tag a sample aspect ratio and a display matrix. AV1 cannot: PyAV copies no
    #: stream setup from a libdav1d-decoded part, and the bare stream the join makes carries neither.
    carries_geometry: bool = True

    @property
    def frames(self) -> bool:
        """Whether the output is a folder of frame files."""
        return self.container is None

    @property
    def output_suffix(self) -> str:
        """The output path's suffix: the file's, or ``""`` for a frame folder."""
        return "" if self.frames else self.suffix

    @property
    def most_bits(self) -> int:
        return max(self.depths)

    @cached_property
    def encoder_formats(self) -> frozenset[str]:
        """The pixel formats the encoder takes."""
        return frozenset(f.name for f in av.Codec(self.encoder, "w").video_formats or ())

    @property
    def subsampled(self) -> bool:
        """Whether its pixel formats halve the chroma, so that sizes must be even."""
        return any(kind in pix_fmt for kind in ("420", "422") for pix_fmt in self.depths.values())

    def pix_fmt(self, bits: int, width: int = 2, height: int = 2) -> str:
        """The pixel format that stores frames of ``bits`` (at most :attr:`most_bits`) at ``width`` x
        ``height``: where a side is odd, the 4:4:4 form of a 4:2:0 or 4:2:2 format (4:4:4 plays in
        ffmpeg-based players but not in most browsers); :class:`ValueError` where the encoder has none."""
        pix_fmt = self.depths[min((depth for depth in self.depths if depth >= bits), default=self.most_bits)]
        if not (width % 2 or height % 2) or not self.subsampled:
            return pix_fmt
        full = pix_fmt.replace("420", "444").replace("422", "444")
        if full not in self.encoder_formats:
            raise ValueError(f"{self.name} needs even sides; got {width}x{height}")
        return full


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")
_YUV = {8: "yuv420p", 10: "yuv420p10le"}
CODEC_TABLE = {codec.name: codec for codec in (
    Codec("h264", "libx264", ".mp4", "mp4", dict(_YUV), ("h264",), crf=("crf", 0, 51, 18),
          preset=("preset", _X26X_PRESETS)),
    Codec("hevc", "libx265", ".mp4", "mp4", {**_YUV, 12: "yuv420p12le"}, ("hevc",), crf=("crf", 0, 51, 20),
          preset=("preset", _X26X_PRESETS), options={"x265-params": "log-level=error"}, tag="hvc1"),
    Codec("av1", "libsvtav1", ".mp4", "mp4", dict(_YUV), ("av1", "libdav1d", "libaom-av1"), crf=("crf", 0, 63, 30),
          preset=("preset", tuple(map(str, range(14)))), carries_geometry=False),
    Codec("vp9", "libvpx-vp9", ".webm", "webm", {8: "yuv420p"}, ("vp9", "libvpx-vp9"), crf=("crf", 0, 63, 31),
          preset=("deadline", ("good", "best", "realtime")), options={"row-mt": "1"}),
    Codec("prores", "prores_ks", ".mov", "mov", {10: "yuv422p10le"}, ("prores",),
          preset=("profile", ("proxy", "lt", "standard", "hq", "4444", "4444xq")), options={"profile": "hq"}),
    Codec("ffv1", "ffv1", ".mkv", "matroska", {8: "bgr0", **{b: f"gbrp{b}le" for b in (9, 10, 12, 14, 16)}},
          ("ffv1",), rgb=True, options={"level": "3", "slicecrc": "1"}),
    Codec("png", "png", ".png", None, {8: "rgb24", 16: "rgb48be"}, ("png",), rgb=True),
    Codec("tiff", "tiff", ".tif", None, {8: "rgb24", 16: "rgb48le"}, ("tiff",), rgb=True,
          options={"compression_algo": "deflate"}),
    Codec("jpeg", "mjpeg", ".jpg", None, {8: "yuvj444p"}, ("mjpeg",), crf=("qscale", 1, 31, 2), full_range=True),
    Codec("dpx", "dpx", ".dpx", None, {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le", 16: "rgb48le"}, ("dpx",),
          rgb=True),
)}
CODECS = tuple(CODEC_TABLE)
#: Suffixes of the frame files a folder given as input may hold (one kind per folder).
FRAME_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dpx", ".exr"})


def get_codec(name: str) -> Codec:
    if name not in CODEC_TABLE:
        raise ValueError(f"unknown codec {name!r}; expected one of {list(CODECS)}")
    return CODEC_TABLE[name]


@dataclass(frozen=True)
class EncoderSettings:
    """What the user set of the encoder: ``crf`` (None: the codec's default; with ``bitrate``, the
    bitrate caps it), ``preset`` (``--encoder-preset``), ``bitrate`` (FFmpeg's notation: ``8M``,
    ``2500k``), ``pix_fmt`` (None: the codec's for the frames' depth) and ``options`` (``(key, value)`` pairs, passed through last)."""

    crf: int | None = None
    preset: str | None = None
    bitrate: str | None = None
    pix_fmt: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def check(self, codec: Codec) -> None:
        """:class:`ValueError` in one line for a setting ``codec`` does not take."""
        if self.crf is not None:
            if codec.crf is None:
                raise ValueError(f"--crf: codec {codec.name} has no constant-quality setting")
            _, low, high, _ = codec.crf
            if not low <= self.crf <= high:
                raise ValueError(f"--crf: {codec.name} takes {low} to {high}; got {self.crf}")
        if self.preset is not None:
            if codec.preset is None:
                raise ValueError(f"--encoder-preset: codec {codec.name} has no presets")
            if self.preset not in codec.preset[1]:
                raise ValueError(f"--encoder-preset: {codec.name} takes {', '.join(codec.preset[1])}; got {self.preset!r}")
        if self.bitrate is not None:
            if codec.crf is None or codec.frames:
                raise ValueError(f"--bitrate: codec {codec.name} takes no bitrate")
            bits_per_second(self.bitrate)
        if self.pix_fmt is not None and self.pix_fmt not in codec.encoder_formats:
            raise ValueError(f"--pix-fmt: {codec.encoder} takes {', '.join(sorted(codec.encoder_formats))}; "
                             f"got {self.pix_fmt!r}")

    def most_bits(self, codec: Codec) -> int:
        """The most bits per sample the output stores: ``pix_fmt``'s, else the codec's."""
        return format_bits(self.pix_fmt) if self.pix_fmt else codec.most_bits

    def encoder_options(self, codec: Codec) -> dict[str, str]:
        """The encoder's options: the codec's own, then the rate control, the preset and the user's."""
        options = dict(codec.options)
        if codec.crf is not None and not (self.bitrate and self.crf is None):
            name, _, _, default = codec.crf
            quality = str(default if self.crf is None else self.crf)
            options.update({"qmin": quality, "qmax": quality} if name == "qscale" else {name: quality})
            if self.bitrate:  # constant quality, capped
                options.update(maxrate=self.bitrate, bufsize=str(2 * bits_per_second(self.bitrate)))
            elif codec.name == "vp9":
                options["b"] = "0"  # libvpx's constant-quality mode
        elif self.bitrate:
            options["b"] = self.bitrate
        if self.preset is not None:
            options[codec.preset[0]] = self.preset
        options.update(self.options)
        return options


def format_bits(pix_fmt: str) -> int:
    """The most bits per sample of a pixel format (``yuv420p10le`` -> 10)."""
    return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)


#: Frame rates written as decimals that stand for NTSC's N * 1000/1001.
NTSC_RATES = {"23.976": "24000/1001", "29.97": "30000/1001", "47.952": "48000/1001", "59.94": "60000/1001",
              "119.88": "120000/1001"}


def frame_rate(text: str) -> Fraction:
    """``"25"``, ``"24000/1001"``, ``"23.976"`` (NTSC: 24000/1001) -> an exact frame rate."""
    return Fraction(NTSC_RATES.get(text, text))


def bits_per_second(text: str) -> int:
    """``"8M"`` -> 8000000 (FFmpeg's k/M/G suffixes, decimal); :class:`ValueError` for anything else."""
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise ValueError(f"--bitrate: expected a number of bits per second such as 8M or 2500k; got {text!r}") \
            from None
    if value <= 0:
        raise ValueError(f"--bitrate: must be positive; got {text!r}")
    return int(value)


#: The codecs' own settings: nothing set by the user.
DEFAULT_ENCODER = EncoderSettings()
