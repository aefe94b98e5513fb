"""Writing video: RGB frames -> an H.264 mp4 (constant or variable frame rate, display rotation), atomically.

    write_mp4("out.mp4", frames, fps=25)                    # frames: HxWx3 uint8 arrays, even sizes
    write_mp4("vfr.mp4", frames, pts=[0, 0.04, 0.1, ...])    # each frame's time in seconds
    write_mp4("prev.mp4", frames, pts=ts, audio_from="src.ts", audio_start=1.467)   # + the source's sound

Audio is copied packet by packet (no re-encoding) when mp4 can hold its codec (AAC, MP3, AC-3, E-AC-3,
Opus, FLAC, ALAC), else re-encoded to AAC; it is interleaved with the frames as they are written, so
memory stays flat, and it is cut to the frames' span.
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

MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}   # audio codecs mp4 holds as they are


class _Audio:
    """The first audio stream of the open input `inp`, written into `out` from `start` (seconds on its clock)
    on, re-timed to begin at 0: `until(t)` writes what plays before `t` seconds of the output."""

    def __init__(self, out, inp, start: float):
        self.inp = inp
        self.src = a = inp.streams.audio[0]
        self.copy = a.codec_context.name in MP4_AUDIO
        if self.copy:
            self.ost = out.add_stream_from_template(a)
        else:
            self.ost = out.add_stream("aac", rate=a.codec_context.sample_rate or 48000)
            self.ost.layout = "stereo" if (a.codec_context.channels or 2) > 1 else "mono"
        self.offset = int(round(start / a.time_base))        # source ticks at output time 0
        self.packets = self.inp.demux(a)
        self.pending = None                                   # a packet read ahead of `until`
        self.samples = 0                                      # re-encoding: samples written so far

    def _next(self):
        p, self.pending = self.pending, None
        return p if p is not None else next(self.packets, None)

    def until(self, t: float, out, *, last: bool = False) -> None:
        """Write the sound that starts before `t` s; `last`: and then end the stream."""
        while (p := self._next()) is not None:
            if p.pts is None:
                continue
            at = float((p.pts - self.offset) * self.src.time_base)
            if at >= t:
                self.pending = p
                break
            if at < 0:
                continue                                      # sound before the first frame
            if self.copy:
                p.pts -= self.offset
                p.dts = p.pts if p.dts is None else p.dts - self.offset
                p.stream = self.ost
                out.mux(p)
            else:
                for f in p.decode():
                    f.pts, f.time_base = self.samples, Fraction(1, f.sample_rate)   # gapless from 0
                    self.samples += f.samples
                    for q in self.ost.encode(f):
                        out.mux(q)
        if last and not self.copy:
            for q in self.ost.encode():
                out.mux(q)

    def close(self) -> None:
        self.inp.close()


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 12, *,
              pts: Sequence[float] | None = None, rotation: int = 0, faststart: bool = False,
              options: dict | None = None, audio_from: str | Path | None = None, audio_start: float = 0.0) -> Path:
    """Encode RGB uint8 frames as H.264 (yuv420p) in an mp4, atomically.

    `pts` gives each frame's time in seconds (variable frame rate); `rotation` stores a display
    rotation, degrees clockwise as a phone's `rotate` tag (90 = portrait clip stored landscape);
    `faststart` puts the index before the data. Width and height must be even (yuv420p).
    `audio_from`: a file whose first audio stream (if any) plays along, `audio_start` seconds of its
    own clock at the first frame.
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
    audio = None
    with atomic_path(path) as tmp:
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {})
        try:
            stream = out.add_stream("libx264", rate=rate, options=dict(options or {}))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if rotation:
                stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
            audio = _open_audio(out, audio_from, audio_start) if audio_from is not None else None
            end = 0.0
            for i, arr in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[..., :3]), format="rgb24")
                frame.pts = int(round(pts[i] * 1000)) if pts is not None else i
                frame.time_base = time_base
                end = float(frame.pts * time_base)
                if audio is not None:
                    audio.until(end, out)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            if audio is not None:
                audio.until(end + float(1 / rate), out, last=True)     # through the last frame
        finally:
            if audio is not None:
                audio.close()
            out.close()
    return path


def _open_audio(out, src, start: float) -> _Audio | None:
    inp = av.open(str(src), metadata_errors="ignore")
    if not inp.streams.audio:
        inp.close()
        return None
    try:
        return _Audio(out, inp, start)
    except BaseException:
        inp.close()
        raise
