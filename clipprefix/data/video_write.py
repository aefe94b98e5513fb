"""Writing video: RGB frames -> an H.264 mp4 (constant or variable frame rate, display rotation), atomically.

    write_mp4("out.mp4", frames, fps=25)                    # frames: HxWx3 uint8 arrays, even sizes
    write_mp4("vfr.mp4", frames, pts=[0, 0.04, 0.1, ...])    # each frame's time in seconds
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

from ..base.errors import ClipPrefixError
from ..base.files import atomic_path


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 12, *,
              pts: Sequence[float] | None = None, rotation: int = 0, faststart: bool = False,
              options: dict | None = None) -> Path:
    """Encode RGB uint8 frames as H.264 (yuv420p) in an mp4, atomically.

    `pts` gives each frame's time in seconds (variable frame rate); `rotation` stores a display
    rotation, degrees clockwise as a phone's `rotate` tag (90 = portrait clip stored landscape);
    `faststart` puts the index before the data. Width and height must be even (yuv420p).
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ClipPrefixError(f"No frames to write to {path}.")
    h, w = first.shape[:2]
    if w % 2 or h % 2:
        raise ClipPrefixError(f"H.264 yuv420p needs even frame sizes; got {w}x{h} for {path}.")
    rate = Fraction(fps).limit_denominator(1001)
    # constant rate: one tick per frame; variable rate: millisecond ticks
    time_base = Fraction(1, 1000) if pts is not None else 1 / rate
    with atomic_path(path) as tmp:
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {})
        try:
            stream = out.add_stream("libx264", rate=rate, options=dict(options or {}))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if rotation:
                stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
            for i, arr in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[..., :3]), format="rgb24")
                frame.pts = int(round(pts[i] * 1000)) if pts is not None else i
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        finally:
            out.close()
    return path
