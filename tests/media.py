"""Real test videos made with PyAV (shared by the test modules)."""

import socket
from fractions import Fraction

import av
import numpy as np

from satecco.video.write import VideoWriter

NTSC = Fraction(30000, 1001)


def random_frames(n=12, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def write(path, frames, codec, frame_rate=NTSC, **kwargs):
    height, width, _ = frames[0].shape
    with VideoWriter(path, width, height, frame_rate, codec=codec, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def moving_frames(n=12, height=48, width=64):
    """Smooth colour ramps that drift from frame to frame: unlike noise, x264 codes them with B-frames."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([x * 8 + i * 3, y * 8 + i * 5, (x + y) * 4 + i * 7], axis=-1).astype(np.uint8)
            for i in range(n)]


def plain_pyav_mp4(path, n=20, height=48, width=64, audio=False, gop=None, frames=None):
    """An h264 mp4 written by PyAV directly (index at the end, as most encoders leave it), optionally
    with an AAC track that runs as long as the video. ``gop`` sets x264's keyframe interval (default
    250); ``frames`` replaces the ``n`` random frames; another suffix (``.ts``, ``.avi``) gets that
    container instead."""
    frames = random_frames(n, height, width, seed=1) if frames is None else frames
    n, (height, width, _) = len(frames), frames[0].shape
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=NTSC, options={} if gop is None else {"g": str(gop)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            samples, step = int(n / NTSC * 48000), 1024
            for start in range(0, samples, step):
                t = np.arange(start, start + step) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def audio_packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.codec_context.name, [bytes(p) for p in container.demux(stream) if p.size]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def textured_frames(n=12, size=64):
    """Drifting gratings: detail that bicubic x4 loses and a network can learn to restore."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for i in range(n):
        u, v = x + 1.5 * i, y + 0.5 * i
        base = 0.5 + 0.25 * np.sin(u / 2.1) * np.cos(v / 3.3) + 0.2 * np.sin((u + v) / 1.7)
        frames.append((np.stack([base, base ** 2, 1 - base], axis=-1).clip(0, 1) * 255).astype(np.uint8))
    return frames
