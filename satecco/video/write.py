"""Writing: :class:`VideoWriter` encodes frames to a file or PNG folder atomically, at 8 or more bits,
with the colour tags it is given. What a source carries besides pixels joins the output when its parts
are joined (:mod:`satecco.video.concat`, :mod:`satecco.video.streams`)."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError
from satecco.storage import atomic_output
from satecco.video.codecs import DEFAULT_ENCODER, EncoderSettings, get_codec
from satecco.video.formats import check_target, reason
from satecco.video.picture import UNTAGGED, Colour, Encoding, rgb_format, yuv_tags


class VideoWriter:
    """Encode ``(H, W, 3)`` RGB frames to ``path``; a context manager.

    ``codec``: a name of :data:`~satecco.video.codecs.CODEC_TABLE`, with ``encoder``'s settings (rate
    control, preset, pixel format, options); where a side is odd, a 4:4:4 format (see
    :meth:`~satecco.video.codecs.Codec.pix_fmt`). ffv1 is lossless bgr0 or gbrp (bit-exact RGB round trip; version 3 with slice CRCs,
    the archival setting); frame codecs write a folder of ``000000<suffix>``, ``000001<suffix>``, ...

    ``bits``: 8 takes uint8 frames; more takes uint16 frames (all 16 bits used), stored at the codec's
    depth for them (:meth:`~satecco.video.codecs.Codec.pix_fmt`: h264 at 10 bits, ffv1 at ``bits``, png
    at 16). ``colour``: the source's tags (:class:`~satecco.video.picture.Colour`); YUV codecs convert
    RGB with the source's matrix and range and write its tags (BT.709 limited range for untagged
    sources; JPEG at full range); RGB codecs keep RGB and the primaries and transfer tags.

    Frame ``i`` gets ``pts = i`` in time base ``1 / frame_rate``, so the output has exactly the frame rate
    and frame count it was given.

    ``scale_from``: the ``(width, height)`` of the frames :meth:`write` takes, when they are to be scaled
    to ``width`` x ``height`` (swscale's Lanczos filter, in the same pass as the conversion to YUV).

    Nothing appears at ``path`` until :meth:`close` succeeds: the output is written to a hidden partial
    file (or folder) in the same folder and moved into place with :func:`os.replace` (see
    :func:`satecco.storage.atomic_output`). An exception inside the ``with`` block, or :meth:`abort`,
    deletes it.
    """

    def __init__(self, path, width: int, height: int, frame_rate: Fraction, codec: str = "h264", bits: int = 8,
                 colour: Colour = UNTAGGED, scale_from: tuple[int, int] | None = None,
                 encoder: EncoderSettings = DEFAULT_ENCODER):
        self.path = Path(path)
        self.codec = get_codec(codec)
        check_target(self.path, codec)
        encoder.check(self.codec)
        most = encoder.most_bits(self.codec)
        if not 8 <= bits <= max(most, 8):
            raise ValueError(f"codec {codec!r} writes 8 to {most} bits; got bits={bits!r}")
        if isinstance(frame_rate, (float, bool)):
            raise ValueError(f"frame_rate must be exact (a Fraction or int, e.g. Fraction(30000, 1001)); "
                             f"got {frame_rate!r}")
        if not (int(width) > 0 and int(height) > 0):
            raise ValueError(f"width and height must be positive; got {width}x{height}")
        self.frame_rate = Fraction(frame_rate)
        if self.frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive; got {frame_rate!r}")
        self.width, self.height, self.bits, self.colour = int(width), int(height), bits, Colour(*colour)
        pix_fmt = encoder.pix_fmt or self.codec.pix_fmt(bits, self.width, self.height)
        #: (height, width) of the frames write() takes
        self.frame_shape = (int(scale_from[1]), int(scale_from[0])) if scale_from else (self.height, self.width)
        self.dtype = np.uint8 if bits <= 8 else np.uint16
        self.frames_written = 0
        self._closed = False
        self._out = None
        self._yuv = None  # YUV codecs: the matrix and range names RGB is converted with
        self._atomic = contextlib.ExitStack()  # closing it moves the partial output to ``path``
        self._tmp = self._atomic.enter_context(atomic_output(self.path))
        try:
            self._open(pix_fmt, encoder.encoder_options(self.codec))
        except BaseException:
            self.abort()
            raise

    @classmethod
    def for_encoding(cls, path, frame_rate: Fraction, encoding: Encoding, given: tuple[int, int]) -> VideoWriter:
        """A writer of ``encoding`` for frames of ``given`` ``(width, height)`` (scaled to ``encoding.size``)."""
        return cls(path, *(encoding.size or given), frame_rate, codec=encoding.codec, bits=encoding.bits,
                   colour=encoding.colour, scale_from=given, encoder=encoding.encoder)

    def _open(self, pix_fmt: str, options: dict[str, str]) -> None:
        """Open the encoder (and, for a video file, the container at the partial path)."""
        if self.codec.frames:
            self._tmp.mkdir()
            self._encoder = av.CodecContext.create(self.codec.encoder, "w")
            self._encoder.options = options
            cc = self._encoder
        else:
            if self.codec.encoder == "libsvtav1":
                os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its setup to stderr
            self._out = av.open(str(self._tmp), "w", format=self.codec.container,
                                options={"movflags": "+faststart"} if self.codec.container in ("mp4", "mov") else {})
            self._encoder = self._out.add_stream(self.codec.encoder, rate=self.frame_rate, options=options)
            if self.codec.tag:
                self._encoder.codec_tag = self.codec.tag
            cc = self._encoder.codec_context
            cc.time_base = 1 / self.frame_rate
        self._encoder.time_base = 1 / self.frame_rate
        self._encoder.width, self._encoder.height, self._encoder.pix_fmt = self.width, self.height, pix_fmt
        self._tag(cc, self.colour)

    def _tag(self, cc, colour: Colour) -> None:
        """Write the colour tags (and, for a YUV codec, choose the RGB -> YUV conversion) from ``colour``."""
        if not self.codec.rgb:
            matrix, full, tags = yuv_tags(colour, full_range=self.codec.full_range)
            self._yuv = (matrix, full)
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = tags
        else:  # RGB stays RGB: only what the numbers mean is tagged
            if colour.primaries not in (0, 2):
                cc.color_primaries = colour.primaries
            if colour.transfer not in (0, 2):
                cc.color_trc = colour.transfer

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, ``(H, W, 3)`` RGB with the writer's height and width (or ``scale_from``'s),
        uint8 (8 bits) or uint16 (more)."""
        if self._closed:
            raise RuntimeError(f"VideoWriter for {str(self.path)!r} is closed")
        frame = np.asarray(frame)
        if frame.shape != (*self.frame_shape, 3) or frame.dtype != self.dtype:
            raise ValueError(f"frame must be ({self.frame_shape[0]}, {self.frame_shape[1]}, 3) "
                             f"{np.dtype(self.dtype).name} RGB; got shape {frame.shape} {frame.dtype}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=rgb_format(self.bits))
        scaled = {} if self.frame_shape == (self.height, self.width) else \
            {"width": self.width, "height": self.height, "interpolation": "LANCZOS"}
        if self._yuv is not None:
            video_frame = video_frame.reformat(format=self._encoder.pix_fmt, dst_colorspace=self._yuv[0],
                                               dst_color_range=self._yuv[1], **scaled)
        elif scaled:
            video_frame = video_frame.reformat(**scaled)
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.frame_rate
        try:
            if self.codec.frames:
                for packet in self._encoder.encode(video_frame):
                    (self._tmp / f"{self.frames_written:06d}{self.codec.suffix}").write_bytes(bytes(packet))
            else:
                self._out.mux(self._encoder.encode(video_frame))
        except av.FFmpegError as e:
            raise VideoError(self.path, f"encode error at frame {self.frames_written}: {reason(e)}") from e
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished output to ``path``."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise VideoError(self.path, "no frames were written; nothing saved")
            if self._out is not None:
                finish_output(self._out, self.path, encoder=self._encoder)
                self._out = None
            self._atomic.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop writing and delete the partial output; ``path`` is left untouched."""
        self._closed = True
        if self._out is not None:
            discard_output(self._out)
            self._out = None
        with contextlib.suppress(_Aborted), self._atomic:
            raise _Aborted  # atomic_output deletes the partial output when its block ends in an exception

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Aborted(Exception):
    """Raised in the atomic output's block by :meth:`VideoWriter.abort`: it deletes the partial output."""


def finish_output(out, path: Path, carried=None, encoder=None) -> None:
    """Flush ``encoder`` into the output container ``out``, mux the rest of ``carried`` (a
    :class:`~satecco.video.streams.Carried`), and close ``out``; an FFmpeg failure raises
    :class:`VideoError` naming ``path``."""
    try:
        if encoder is not None:
            out.mux(encoder.encode(None))
        if carried is not None:
            carried.mux_until(None)
        out.close()
    except av.FFmpegError as e:
        raise VideoError(path, f"cannot finish writing: {reason(e)}") from e


def discard_output(out) -> None:
    """Close a half-written output container that is about to be deleted."""
    try:
        out.close()
    except (av.FFmpegError, OSError, ValueError):
        pass  # a half-written container may fail to finalise; it is deleted next anyway
