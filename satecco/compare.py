"""``upscale --compare``: beside each output, a side-by-side video of the bicubic upscale of its input
(MATLAB-style, as ``--method bicubic``) and the output, each half labelled, to judge a run at a glance.

It is written by the driver after the outputs, from the files themselves, so both engines give the
same comparison; with ``--frames`` or ``--preview`` it covers the same frames as the output.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from satecco import storage
from satecco.metrics.imresize import imresize
from satecco.video.read import read_frames
from satecco.video.write import VideoWriter

#: Label strip height, in pixels of the comparison (even, for 4:2:0).
LABEL_HEIGHT = 20
COMPARE_SUFFIX = "-compare.mp4"


def comparison_path(output: str) -> str:
    """Where the comparison of ``output`` goes: beside it, ``<output name>-compare.mp4``."""
    folder, slash, name = str(output).rstrip("/").rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}{slash}{stem}{COMPARE_SUFFIX}"


def label(text: str, width: int) -> np.ndarray:
    """A black strip ``(LABEL_HEIGHT, width, 3)`` uint8 bearing ``text``, to stand above a frame."""
    strip = Image.new("RGB", (width, LABEL_HEIGHT))
    ImageDraw.Draw(strip).text((4, 3), text, fill=(255, 255, 255), font=ImageFont.load_default(size=12))
    return np.asarray(strip)


def write_comparison(source: str, output: str, first: int, frame_rate: Fraction, method: str) -> str:
    """Write the comparison of ``output`` (local or URI) with its input ``source``, whose frame ``first``
    is the output's first; returns its path. Frames are 8-bit, as players show them."""
    target = comparison_path(output)
    local_output = storage.local_copy(output)
    with storage.atomic_output(target) as local_target:
        writer = None
        try:
            lows = read_frames(storage.local_copy(source), start=first)
            for low, high in zip(lows, read_frames(local_output), strict=False):
                if writer is None:  # the first frame gives the size, the labels and the writer
                    labels = np.concatenate([label("bicubic", high.shape[1]), label(method, high.shape[1])], axis=1)
                    writer = VideoWriter(Path(local_target), labels.shape[1], LABEL_HEIGHT + high.shape[0], frame_rate)
                bicubic = imresize(low, output_shape=high.shape[:2])
                pair = np.concatenate([labels, np.concatenate([bicubic, high], axis=1)])
                writer.write(pair)
            if writer is None:
                raise ValueError(f"{output}: no frames to compare")
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    return target
