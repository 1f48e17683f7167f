"""What a source carries besides its pictures, brought into its output: every audio and subtitle stream
(with language, title and disposition), chapters, container and video-stream metadata, the sample
aspect ratio, the display matrix (rotation), and each frame's timestamp (variable frame rates stay
variable).

:func:`plan_streams` decides, before any work, what becomes of each stream in the output's container:
copied packet for packet where the container holds its codec; transcoded where it cannot but a
lossless or faithful form exists (PCM, FLAC and other audio into ``.mp4`` or ``.mov`` -> ALAC,
lossless; text subtitles -> ``mov_text``); dropped with a note for what no container of ours can hold
(data streams, attachments into ``.mp4``); refused (:class:`ValueError`) for a subtitle or audio stream
that would be lost (anything but Opus, Vorbis and WebVTT in a ``.webm``). A frame folder holds
pictures only: every stream is dropped with a note.
:class:`Carried` then does it while the parts are joined.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from fractions import Fraction

import av

from satecco.video.codecs import get_codec

#: Audio codecs an ``.mp4`` takes as they are (the others are transcoded to ALAC, which is lossless).
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"})
#: Audio and subtitle codecs a ``.webm`` takes (the others would be lost: such an input is refused).
WEBM_CODECS = frozenset({"opus", "vorbis", "webvtt"})
#: Text subtitle codecs turned into ``mov_text`` for an ``.mp4`` or ``.mov``.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "text", "webvtt", "mov_text", "ass", "ssa"})
#: ALAC's channel layouts by channel count (it takes no other).
ALAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1(back)", 8: "7.1(wide)"}
#: Metadata keys that describe the source's encoding rather than its content; the muxer writes its own.
STALE_KEYS = re.compile(r"^(encoder|duration|number_of_frames|number_of_bytes|bps|_statistics.*|major_brand|"
                        r"minor_version|compatible_brands|handler_name|vendor_id)$", re.IGNORECASE)


@dataclass(frozen=True)
class StreamPlan:
    """What becomes of one non-video stream of a source: ``action`` is ``copy``, ``alac``, ``mov_text``
    or ``drop`` (with ``why``)."""

    index: int
    kind: str
    codec: str
    language: str
    action: str
    why: str = ""

    def describe(self) -> str:
        what = {"copy": "copied", "alac": "transcoded to ALAC (lossless)", "mov_text": "converted to mov_text",
                "drop": "dropped"}[self.action]
        return f"{self.kind} #{self.index} {self.codec} ({self.language}): {what}" + (f": {self.why}" if self.why else "")


def plan_streams(container, codec: str) -> list[StreamPlan]:
    """What becomes of each non-video stream of the open source ``container`` in an output of ``codec``
    (every stream but the first video one). Raises :class:`ValueError` for one that would be lost."""
    fmt = get_codec(codec).container
    probe = av.open(io.BytesIO(), "w", format=fmt) if fmt == "matroska" else None
    video = container.streams.video[0].index if container.streams.video else None
    plans = []
    for stream in container.streams:
        if stream.index == video:
            continue
        name = stream.codec_context.name if stream.codec_context else stream.metadata.get("mimetype", "data")
        plan = StreamPlan(stream.index, stream.type, name, stream.metadata.get("language", "und"), "copy")
        plans.append(_decide(plan, stream, fmt, probe))
    return plans


def _decide(plan: StreamPlan, stream, fmt: str | None, probe) -> StreamPlan:
    def with_action(action: str, why: str = "") -> StreamPlan:
        return StreamPlan(plan.index, plan.kind, plan.codec, plan.language, action, why)

    if fmt is None:
        return with_action("drop", "a frame folder holds pictures only")
    if plan.kind == "video":
        return with_action("drop", "only the first video stream is upscaled")
    if plan.kind == "data":
        return with_action("drop", "data streams are not copied (chapters and timecodes are kept as such)")
    suffix = {"matroska": ".mkv"}.get(fmt, f".{fmt}")
    lost = f"cannot go into {suffix}; use --codec ffv1 (.mkv keeps it as it is)"
    if fmt in ("mp4", "mov"):
        if plan.kind == "audio":
            if plan.codec in MP4_AUDIO:
                return plan
            if stream.codec_context.channels not in ALAC_LAYOUTS:
                raise ValueError(f"audio #{plan.index} ({plan.codec}, {stream.codec_context.channels} channels) {lost}")
            return with_action("alac", f"{suffix} cannot hold {plan.codec}")
        if plan.kind == "subtitle":
            if plan.codec in TEXT_SUBTITLES:
                return plan if plan.codec == "mov_text" else with_action("mov_text", f"{suffix} cannot hold {plan.codec}")
            raise ValueError(f"subtitle #{plan.index} ({plan.codec}) {lost}")
        return with_action("drop", f"{suffix} cannot hold {plan.kind} streams")
    if fmt == "webm":
        if plan.kind in ("audio", "subtitle"):
            if plan.codec in WEBM_CODECS:
                return plan
            raise ValueError(f"{plan.kind} #{plan.index} ({plan.codec}) {lost}")
        return with_action("drop", f".webm cannot hold {plan.kind} streams")
    try:
        probe.add_stream_from_template(stream)
    except (ValueError, av.FFmpegError) as error:
        if plan.kind in ("audio", "subtitle"):
            raise ValueError(f"{plan.kind} #{plan.index} ({plan.codec}) cannot go into .mkv: {error}") from error
        return with_action("drop", f".mkv cannot hold it: {error}")
    return plan


def kept_metadata(metadata: dict) -> dict:
    """``metadata`` without the keys that describe the source's encoding (see :data:`STALE_KEYS`)."""
    return {key: value for key, value in metadata.items() if not STALE_KEYS.match(key)}


def frame_times(container) -> list[int] | None:
    """Every frame's presentation timestamp of the first video stream of a freshly opened ``container``,
    in display order and in the stream's time base, from its packets (nothing decoded); None where a
    packet has none or two share one."""
    times = []
    for packet in container.demux(container.streams.video[0]):
        if packet.size:
            if packet.pts is None:
                return None
            times.append(packet.pts)
    return sorted(times) if len(set(times)) == len(times) else None


class Timing:
    """Output frame index -> timestamp in ``time_base``: the source's own timestamps (``times``) where
    there is one per frame, else ``i`` in ``1 / frame_rate``. Indices before 0 (decode timestamps of
    reordered frames) and after the last continue at the shortest and the last frame time."""

    def __init__(self, frame_rate: Fraction, times: list[int] | None = None, time_base: Fraction | None = None):
        self.times = times
        self.time_base = time_base if times else 1 / frame_rate
        if times:
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)] or [max(1, round(1 / frame_rate / time_base))]
            self.shortest, self.last = min(gaps), gaps[-1]

    def at(self, index: int) -> int:
        if not self.times:
            return index
        if index < 0:
            return self.times[0] + index * self.shortest
        if index >= len(self.times):
            return self.times[-1] + (index - len(self.times) + 1) * self.last
        return self.times[index]

    def seconds(self, index: int) -> Fraction:
        return self.at(index) * self.time_base


class Carried:
    """The source's streams, metadata and chapters, added to the output container ``out`` as
    :func:`plan_streams` decided; :meth:`mux_until` interleaves their packets with the video by time.
    ``span``: ``(start, end)`` in source seconds, for an excerpt: the packets that overlap it are kept,
    moved ``start`` earlier (see :meth:`_shifted`), and the chapters are cut to it."""

    def __init__(self, source, out, plans: list[StreamPlan], span: tuple[Fraction, Fraction] | None = None):
        self._out, self._span = out, span
        out.metadata.update(kept_metadata(source.metadata))
        chapters = source.chapters() if span is None else excerpt_chapters(source.chapters(), *span)
        if chapters:
            out.set_chapters(chapters)
        self._outputs, self._resamplers, self._to_mov_text = {}, {}, set()
        for plan in plans:
            if plan.action != "drop":
                self._outputs[plan.index] = self._add(source.streams[plan.index], plan)
        self._packets = (source.demux([source.streams[i] for i in self._outputs]) if self._outputs else None)
        self._pending = None

    def _add(self, stream, plan: StreamPlan):
        if plan.action == "copy":
            added = self._out.add_stream_from_template(stream)
        elif plan.action == "alac":
            cc = stream.codec_context
            layout = ALAC_LAYOUTS[cc.channels]
            added = self._out.add_stream("alac", rate=cc.sample_rate, layout=layout)
            self._resamplers[stream.index] = av.AudioResampler(
                format="s16p" if cc.format.bytes <= 2 else "s32p", layout=layout, rate=cc.sample_rate)
        else:  # mov_text: muxed from the text of each subtitle packet
            added = self._out.add_mux_stream("mov_text")
            added.time_base = stream.time_base
            self._to_mov_text.add(stream.index)
        added.metadata.update(kept_metadata(stream.metadata))
        added.disposition = stream.disposition
        return added

    def mux_until(self, seconds: Fraction | None) -> None:
        """Mux the carried packets that start before ``seconds`` (all the rest for None)."""
        while self._packets is not None:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    self._packets = None
                    self._flush()
                    return
            packet = self._pending
            when = packet.pts if packet.pts is not None else packet.dts
            if when is not None and self._span is not None:
                if when * packet.time_base >= self._span[1]:  # the excerpt's end: nothing more is carried
                    self._packets = None
                    self._flush()
                    return
                if (when + (packet.duration or 0)) * packet.time_base <= self._span[0]:  # over before it starts
                    self._pending = None
                    continue
                when = max(0, when - round(self._span[0] / packet.time_base))
            if when is not None and seconds is not None and when * packet.time_base >= seconds:
                return
            self._pending = None
            if when is not None:
                self._mux(self._shifted(packet))

    def _shifted(self, packet):
        """``packet`` moved to the excerpt's time (as it is, without a span). Packets are kept whole, as
        FFmpeg's stream copy keeps them: one that began before the excerpt starts at 0, shortened."""
        if self._span is not None:
            offset = round(self._span[0] / packet.time_base)
            early = max(0, offset - (packet.pts if packet.pts is not None else packet.dts))
            packet.pts = None if packet.pts is None else packet.pts - offset + early
            packet.dts = None if packet.dts is None else max(0, packet.dts - offset + early)
            if early and packet.duration:
                packet.duration = max(1, packet.duration - early)
        return packet

    def _mux(self, packet) -> None:
        index = packet.stream.index
        target = self._outputs[index]
        if index in self._resamplers:
            for frame in packet.decode():
                for resampled in self._resamplers[index].resample(frame):
                    self._out.mux(target.encode(resampled))
            return
        if index in self._to_mov_text:
            packet = mov_text_packet(packet)
        packet.stream = target
        self._out.mux(packet)

    def _flush(self) -> None:
        for index in self._resamplers:
            for resampled in self._resamplers[index].resample(None):
                self._out.mux(self._outputs[index].encode(resampled))
            self._out.mux(self._outputs[index].encode(None))


def excerpt_chapters(chapters: list[dict], start: Fraction, end: Fraction) -> list[dict]:
    """The ``chapters`` (PyAV's dicts) that overlap ``[start, end)`` seconds, cut to it and moved
    ``start`` earlier."""
    kept = []
    for chapter in chapters:
        base = chapter["time_base"]
        first, last = max(chapter["start"] * base, start), min(chapter["end"] * base, end)
        if last > first:
            kept.append({**chapter, "start": round((first - start) / base), "end": round((last - start) / base)})
    return kept


def mov_text_packet(packet) -> av.Packet:
    """A text subtitle packet (SubRip, WebVTT, ASS dialogue) as a ``mov_text`` sample: its plain text,
    markup removed, behind a 16-bit length. Written by hand: FFmpeg's subtitle encoders take decoded
    subtitles, which PyAV does not hand back to an encoder."""
    text = bytes(packet).decode("utf-8", "replace")
    if packet.stream.codec_context.name in ("ass", "ssa"):
        text = text.split(",", 8)[-1]  # ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n").replace("\\n", "\n")
    text = re.sub(r"<[^>]*>", "", text).encode()
    converted = av.Packet(struct.pack(">H", len(text)) + text)
    converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
    converted.time_base = packet.time_base
    return converted
