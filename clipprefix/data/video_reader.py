"""One open video stream (PyAV): validated on opening, probed, decoded forward, seeked on request.

    info = probe("clip.mp4")          # duration, fps, size after rotation, codec, first frame's time

Unreadable files raise `ClipPrefixError` naming the file and the reason: missing, empty, a folder, an
image, audio only, no decodable frames, corrupt or truncated (also mid-stream), broken index.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..base.errors import ClipPrefixError

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe",
                 "ppm_pipe", "pgm_pipe", "qoi_pipe", "svg_pipe", "jpegxl_pipe", "j2k_pipe"}
_NO_INDEX_SEEK_S = 20.0   # without a keyframe index, seek only over gaps longer than this (seconds)
_LOOKAHEAD = 8            # packets demuxed ahead of the decoder: covers B-frame reordering
_THREADS = "SLICE"        # decoder threading; frame threads measured slower here, and extract runs one decoder per worker


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    duration: float      # seconds, from the first frame's pts to the end of the last frame
    fps: float           # average frame rate
    frame_count: int     # from the container header, else duration * fps (an estimate)
    width: int           # as displayed, i.e. after rotation
    height: int
    rotation: int        # degrees the stored frames are turned clockwise for display (0/90/180/270)
    codec: str
    start: float         # pts of the first frame, seconds (usually 0)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class Frame:
    image: np.ndarray                      # HxWx3 uint8 RGB, upright
    time: float                            # presentation time, seconds (pts * time_base)
    target: float | None = None            # the time that was asked for
    span: tuple[float, float] | None = None  # the slot this frame stands for (segment, step or scene)


class VideoReader:
    """An open video stream, validated; decodes forward and seeks on request."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._reformatter = av.video.reformatter.VideoReformatter()
        p = self.path
        if not p.exists():
            raise ClipPrefixError(f"Video {p} does not exist.")
        if p.is_dir():
            raise ClipPrefixError(f"Video {p} is a folder, not a file.")
        if p.stat().st_size == 0:
            raise ClipPrefixError(f"Video {p} is empty (0 bytes).")
        try:
            self.container = av.open(str(p), metadata_errors="ignore")
        except av.FFmpegError as e:
            raise ClipPrefixError(f"Video {p} cannot be opened: it is corrupt, truncated or not a video ({_msg(e)}).") from e
        c = self.container
        try:
            if c.format.name in IMAGE_FORMATS or c.format.name.endswith("_pipe"):
                raise ClipPrefixError(f"Video {p} is an image ({c.format.name.removesuffix('_pipe')}), not a video.")
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams})
                what = "audio only" if kinds == ["audio"] else ("no streams" if not kinds else "only " + "/".join(kinds))
                raise ClipPrefixError(f"Video {p} has no video stream ({what}).")
            self.stream = s = c.streams.video[0]
            s.thread_type = _THREADS
            self.tb = s.time_base or Fraction(1, 90000)
            self.codec = s.codec_context.name
            self._head: list = []    # frames decoded while probing, handed out first
            self.damaged: set[int] = set()   # pts of frames decoded from a damaged stretch
            self.want: int | None = None      # pts of the frame being looked for (None: every frame)
            self._it = self._decode()
            for _ in range(2):       # two frames: proves the stream decodes and that it is a real video
                f = next(self._it, None)
                if f is None:
                    break
                self._head.append(f)
            if not self._head:
                raise ClipPrefixError(f"Video {p} has no decodable frames (corrupt or truncated).")
            if len(self._head) == 1:
                raise ClipPrefixError(f"Video {p} has a single frame; caption it as an image instead.")
            first = self._head[0]
            self.coded_size = (first.width, first.height)
            self.rotation = (-int(round(first.rotation or 0))) % 360  # PyAV: counter-clockwise; ours: clockwise
            self.start_pts = first.pts if first.pts is not None else 0
            self.start = float(self.start_pts * self.tb)
            self.fps = float(s.average_rate or s.guessed_rate or s.base_rate or 0) or \
                1.0 / max(1e-6, float((self._head[1].pts - self._head[0].pts) * self.tb))
            self.duration = self._duration()
            self.keys = self._keyframe_pts()
        except BaseException:
            c.close()
            raise

    # -- stream facts
    def _duration(self) -> float:
        s, c = self.stream, self.container
        # how far before the promised end the frames may stop: the video track's own duration is exact;
        # a container duration also covers audio, which may run on a little (mkv, webm)
        self.slack = 0.25
        if s.duration:
            d = float(s.duration * self.tb) - (self.start - float((s.start_time or 0) * self.tb))
        elif c.duration:
            d = c.duration / 1_000_000 - (self.start - (c.start_time or 0) / 1_000_000)
            self.slack = 2.0 + 0.05 * d
        else:
            d = 0.0
        if not d > 0:
            raise ClipPrefixError(f"Video {self.path} has no known duration (a raw or broken stream); remux it to mp4.")
        return d

    def _keyframe_pts(self) -> list[int]:
        """Keyframe times in pts units from the container index (empty when the format has none)."""
        try:
            entries = self.stream.index_entries
            keys = [e.timestamp for e in entries if e.is_keyframe]
            first = entries[0].timestamp if len(entries) else None
        except (AttributeError, IndexError):
            return []
        if not keys:
            return []
        # mp4 indexes decode timestamps; with B-frames the first frame shows `shift` ticks after its dts
        shift = self.start_pts - first if first is not None and first <= self.start_pts else 0
        return sorted(k + shift for k in keys)

    def info(self) -> VideoInfo:
        w, h = self.coded_size
        if self.rotation in (90, 270):
            w, h = h, w
        count = self.stream.frames or int(round(self.duration * self.fps))
        return VideoInfo(self.path, self.duration, self.fps, count, w, h, self.rotation, self.codec, self.start)

    # -- decoding
    def _decode(self) -> Iterator:
        """Frames in presentation order, decoding only what the current target `self.want` needs.

        A non-reference frame is skipped (never decoded) when a packet already in view has a later pts
        that is still <= the target: that frame can be neither the answer nor a reference. The decoder
        conceals bitstream errors and flags only the frame where it found one, so every frame after it
        up to the next keyframe is recorded as damaged too.
        """
        ctx = self.stream.codec_context
        ahead: deque = deque()                  # demuxed, not yet decoded
        fed: deque = deque(maxlen=_LOOKAHEAD)   # pts of packets decoded last
        damaged, last, skipping = False, None, False

        def decode(packet):
            nonlocal skipping
            p, want = packet.pts, self.want
            skip = p is not None and want is not None and p < want and any(
                q is not None and p < q <= want for q in itertools.chain(fed, (x.pts for x in ahead)))
            if skip != skipping:
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            fed.append(p)
            return packet.decode()

        try:
            for packet in itertools.chain(self.container.demux(self.stream), [None]):
                if packet is not None:
                    ahead.append(packet)
                    if len(ahead) <= _LOOKAHEAD:
                        continue
                while ahead and (packet is None or len(ahead) > _LOOKAHEAD):
                    for frame in decode(ahead.popleft()):
                        damaged = (damaged and not frame.key_frame) or frame.is_corrupt
                        if damaged and frame.pts is not None:
                            self.damaged.add(frame.pts)
                        last = frame.pts
                        yield frame
        except av.FFmpegError as e:
            at = f" after {float(last * self.tb):.2f} s" if last is not None else ""
            raise ClipPrefixError(f"Video {self.path} is corrupt or truncated: reading failed{at} ({_msg(e)}).") from e

    def _next(self):
        if self._head:
            return self._head.pop(0)
        return next(self._it, None)

    def seek(self, pts: int) -> None:
        """Position the decoder so that the next frame is the one on screen at `pts` or earlier."""
        back = max(1, int(round(1.0 / float(self.tb))))  # first retry one second earlier
        target = pts
        for _ in range(8):
            try:
                self.container.seek(max(target, self.start_pts), backward=True, any_frame=False, stream=self.stream)
            except av.FFmpegError as e:
                raise ClipPrefixError(f"Video {self.path} cannot be seeked to {float(target * self.tb):.3f} s ({_msg(e)}).") from e
            self._it = self._decode()
            self._head = []
            f = self._next()
            # a frame after the target, or one decoded without its references (open GOP): step back
            if f is None or f.pts is None or (f.pts <= pts and not f.is_corrupt) or target <= self.start_pts:
                if f is not None:
                    self._head = [f]
                return
            target -= back
            back *= 2
        raise ClipPrefixError(f"Video {self.path} cannot be seeked to {float(pts * self.tb):.3f} s (broken index).")

    def reformat(self, frame, **kw) -> np.ndarray:
        """Convert (and resize) with one cached swscale context: a fresh one per frame costs ~3 ms."""
        return self._reformatter.reformat(frame, threads=1, **kw).to_ndarray()

    def close(self) -> None:
        self.container.close()


def _msg(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).strip().rstrip(".")


def probe(path: str | Path) -> VideoInfo:
    """Open, validate and describe a video; raises `ClipPrefixError` for anything that is not a real video."""
    r = VideoReader(path)
    try:
        return r.info()
    finally:
        r.close()
