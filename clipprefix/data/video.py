"""All video decoding (PyAV): probing, and uniform / fixed-rate / per-scene frame sampling with true timestamps.

    info = video.probe("clip.mp4")                          # duration, fps, size after rotation, ...
    for f in video.sample("clip.mp4", video.uniform(16)):   # segment centres, never the very first frame
        f.image, f.time, f.span                             # upright RGB uint8, pts seconds, slot it stands for
    video.sample(path, "every:2") / video.fps(1) / video.scenes(0.1)

    python -m clipprefix.video clip.mp4 uniform:8           # prints the probe and the chosen timestamps

Frame choice: for a target time t the frame returned is the one on screen at t (the last frame with
pts <= t), also on variable-frame-rate files. Frames are decoded forward and the file is re-seeked only
when a keyframe lies between the current position and the next target (seeking per target is up to 4x
slower than decoding on). Only the frames handed out are converted to RGB, optionally straight to a
smaller size in libswscale. Memory stays bounded: everything is a generator holding two frames.
Unreadable files raise `ClipPrefixError` naming the file and the reason.
"""
from __future__ import annotations

import bisect
import itertools
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..base.errors import ClipPrefixError

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


@dataclass(frozen=True)
class Sampling:
    """A frame sampling policy; `str(policy)` ('uniform:16', 'every:2', 'scenes:0.1') names it in caches."""
    kind: str
    value: float
    min_seconds: float = 0.5   # scenes only: shortest scene

    def __str__(self) -> str:
        def num(x):
            return int(x) if float(x).is_integer() else x
        extra = f":{num(self.min_seconds)}" if self.kind == "scenes" and self.min_seconds != 0.5 else ""
        return f"{self.kind}:{num(self.value)}{extra}"

    def slots(self, info: VideoInfo) -> list[tuple[float, float]]:
        """The time slots (start, end) in seconds; a frame is taken at each slot's centre."""
        if self.kind == "uniform":
            n = int(self.value)
            step = info.duration / n
            return [(info.start + i * step, info.start + (i + 1) * step) for i in range(n)]
        if self.kind == "every":
            n = max(1, math.ceil(info.duration / self.value - 1e-9))
            return [(info.start + i * self.value, min(info.end, info.start + (i + 1) * self.value)) for i in range(n)]
        raise ClipPrefixError(f"The sampling policy {self} has no fixed slots.")


def uniform(n: int) -> Sampling:
    """`n` frames at the centres of `n` equal segments (so never the often-black very first frame)."""
    if int(n) < 1:
        raise ClipPrefixError(f"uniform sampling needs at least one frame, got {n}.")
    return Sampling("uniform", int(n))


def every(seconds: float) -> Sampling:
    """One frame per `seconds`-long step, taken at the step's centre."""
    if not seconds > 0:
        raise ClipPrefixError(f"every() needs a positive step in seconds, got {seconds}.")
    return Sampling("every", float(seconds))


def fps(f: float) -> Sampling:
    """`f` frames per second (= every(1 / f))."""
    if not f > 0:
        raise ClipPrefixError(f"fps() needs a positive rate, got {f}.")
    return every(1.0 / f)


def scenes(threshold: float = 0.1, min_seconds: float = 0.5) -> Sampling:
    """One frame per scene (its middle); a cut is a mean absolute RGB change > `threshold` (0-1) between
    consecutive downscaled frames. Scenes shorter than `min_seconds` merge into the previous one."""
    if not 0 < threshold < 1:
        raise ClipPrefixError(f"The scene threshold is a fraction in (0, 1), got {threshold}.")
    if min_seconds < 0:
        raise ClipPrefixError(f"min_seconds must be >= 0, got {min_seconds}.")
    return Sampling("scenes", float(threshold), float(min_seconds))


def parse_policy(spec: str | Sampling) -> Sampling:
    """'uniform:16' | 'every:2' | 'fps:1' | 'scenes[:threshold[:min_seconds]]' -> `Sampling`."""
    if isinstance(spec, Sampling):
        return spec
    kind, _, rest = str(spec).strip().partition(":")
    args = [a for a in rest.split(":") if a]
    try:
        if kind == "uniform" and len(args) == 1:
            return uniform(int(args[0]))
        if kind == "every" and len(args) == 1:
            return every(float(args[0].rstrip("s")))
        if kind == "fps" and len(args) == 1:
            return fps(float(args[0]))
        if kind == "scenes" and len(args) <= 2:
            return scenes(*(float(a) for a in args))
    except ValueError:
        pass
    raise ClipPrefixError(f"Unknown frame sampling '{spec}'; use uniform:N, every:SECONDS, fps:F or scenes[:THRESHOLD].")


# ------------------------------------------------------------------ opening and probing
class _Reader:
    """An open video stream, validated; decodes forward and seeks on request."""

    def __init__(self, path: str | Path):
        import av

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
        import av

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
        import av

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
    r = _Reader(path)
    try:
        return r.info()
    finally:
        r.close()


# ------------------------------------------------------------------ frames at given times
def _to_array(r: _Reader, frame, short_side: int | None) -> np.ndarray:
    kw = {}
    if short_side:
        w, h = frame.width, frame.height
        s = min(w, h)
        if s > short_side:   # downscale only; swscale does the resize during the colour conversion
            kw = dict(width=max(1, round(w * short_side / s)), height=max(1, round(h * short_side / s)),
                      interpolation="BICUBIC")
    arr = r.reformat(frame, format="rgb24", **kw)
    if r.rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=-r.rotation // 90))  # rot90 turns counter-clockwise
    return arr


def _frames_at(r: _Reader, times: Sequence[float], spans=None, short_side: int | None = None) -> Iterator[Frame]:
    tb = r.tb
    order = sorted(range(len(times)), key=lambda i: times[i])
    targets = [int(math.floor(times[i] / tb + 1e-6)) for i in order]   # seconds -> pts ticks
    keys = r.keys
    no_index_gap = int(_NO_INDEX_SEEK_S / tb)
    prev = pending = None   # prev: last frame with pts <= target; pending: first frame past it
    end_pts = int((r.start + r.duration) / tb)
    frame_ticks = int(1 / (r.fps * tb)) if r.fps else 0
    for j, i in enumerate(order):
        t = targets[j]
        r.want = t
        pos = pending.pts if pending is not None else (prev.pts if prev is not None else r.start_pts)
        if t > pos:
            # seek only when a keyframe lies strictly after the current position and at or before the target
            k = bisect.bisect_right(keys, t - frame_ticks) - 1   # index times may run a frame early
            if (keys and k >= 0 and keys[k] > pos + frame_ticks) or (not keys and t - pos > no_index_gap):
                r.seek(t)
                prev = pending = None
        while pending is None or pending.pts <= t:
            if pending is not None:
                prev = pending
            pending = r._next()
            if pending is None:
                break
            if pending.pts is None:
                raise ClipPrefixError(f"Video {r.path} has frames without timestamps; remux it to mp4.")
        chosen = prev if prev is not None else pending
        if chosen is None:
            raise ClipPrefixError(f"Video {r.path} is truncated: no frame could be decoded at {times[i]:.3f} s.")
        if pending is None and chosen.pts + 2 * max(frame_ticks, 1) < end_pts - int(r.slack / tb):
            # the stream stopped well before the duration its header promises: a cut-off file
            raise ClipPrefixError(f"Video {r.path} is truncated: frames stop at {float(chosen.pts * tb):.2f} s "
                                  f"of {r.start + r.duration:.2f} s.")
        if chosen.pts in r.damaged:
            raise ClipPrefixError(f"Video {r.path} is corrupt: the frame at {float(chosen.pts * tb):.3f} s is damaged.")
        yield Frame(_to_array(r, chosen, short_side), float(chosen.pts * tb), float(times[i]),
                    spans[i] if spans is not None else None)


def _runs(r: _Reader, ticks: list[int], workers: int) -> list[int]:
    """Split sorted targets into up to `workers` runs of similar decoding cost; a run starts only where
    the decoder would seek anyway (a keyframe between two targets). Returns the runs' first indices."""
    costs, starts_gop = [], []
    prev = None
    for t in ticks:
        k = r.keys[max(0, bisect.bisect_right(r.keys, t) - 1)]
        fresh = prev is None or prev < k
        costs.append(t - (k if fresh else prev))   # ticks decoded for this target
        starts_gop.append(fresh)
        prev = t
    total, acc, starts = sum(costs), 0, [0]
    for j, c in enumerate(costs):
        if j and starts_gop[j] and len(starts) < workers and acc >= total * len(starts) / workers:
            starts.append(j)
        acc += c
    return starts


def _frames_at_parallel(r: _Reader, times: list[float], spans, short_side, workers: int | None) -> Iterator[Frame]:
    """`_frames_at`, with runs of keyframe intervals decoded in parallel threads (PyAV releases the GIL)
    when there are few targets: each extra thread holds its run's frames until they are yielded."""
    order = sorted(range(len(times)), key=times.__getitem__)
    ts = [times[i] for i in order]
    sp = [spans[i] for i in order] if spans is not None else None
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(ts) <= 64 else 1
    starts = _runs(r, [int(math.floor(t / r.tb + 1e-6)) for t in ts], workers) if workers > 1 and r.keys else [0]
    if len(starts) == 1:
        yield from _frames_at(r, ts, sp, short_side)
        return
    bounds = starts + [len(ts)]

    def run(a: int, b: int) -> list[Frame]:
        rr = _Reader(r.path)
        try:
            return list(_frames_at(rr, ts[a:b], sp[a:b] if sp else None, short_side))
        finally:
            rr.close()

    with ThreadPoolExecutor(len(starts) - 1, thread_name_prefix="gop") as pool:
        futures = [pool.submit(run, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
        yield from _frames_at(r, ts[:bounds[1]], sp[:bounds[1]] if sp else None, short_side)
        for f in futures:
            yield from f.result()


def frames_at(path: str | Path, times: Sequence[float], *, short_side: int | None = None,
              workers: int | None = None) -> Iterator[Frame]:
    """The frames on screen at `times` (seconds, any order; yielded sorted by time). `workers` threads
    decode separate keyframe intervals (default: 2 for up to 64 targets, else 1)."""
    r = _Reader(path)
    try:
        yield from _frames_at_parallel(r, list(times), None, short_side, workers)
    finally:
        r.close()


def iter_frames(path: str | Path, *, short_side: int | None = None) -> Iterator[Frame]:
    """Every frame in presentation order (for live apps); still one frame in memory at a time."""
    r = _Reader(path)
    try:
        while (f := r._next()) is not None:
            yield Frame(_to_array(r, f, short_side), float(f.pts * r.tb))
    finally:
        r.close()


# ------------------------------------------------------------------ scenes
def _scene_spans(r: _Reader, threshold: float, min_seconds: float) -> list[tuple[float, float]]:
    cuts, last, last_cut = [r.start], None, r.start
    width = 64   # tiny frames: cuts are global changes, and swscale makes them cheaply
    while (f := r._next()) is not None:
        h = max(2, round(width * f.height / max(1, f.width)))
        small = r.reformat(f, format="rgb24", width=width, height=h).astype(np.int16)
        t = float(f.pts * r.tb)
        if last is not None and float(np.abs(small - last).mean()) / 255.0 > threshold and t - last_cut >= min_seconds:
            cuts.append(t)
            last_cut = t
        last = small
    end = r.start + r.duration
    bounds = cuts + [end]
    spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_seconds:   # a flash at the very end
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


def detect_scenes(path: str | Path, threshold: float = 0.1, min_seconds: float = 0.5) -> list[tuple[float, float]]:
    """Scene spans (start, end) in seconds; decodes every frame once, at 64 pixels wide."""
    r = _Reader(path)
    try:
        return _scene_spans(r, threshold, min_seconds)
    finally:
        r.close()


# ------------------------------------------------------------------ the one entry point
def sample(path: str | Path, policy: str | Sampling, *, short_side: int | None = None,
           max_frames: int | None = None, workers: int | None = None) -> Iterator[Frame]:
    """Frames of `path` chosen by `policy`, in time order, each with its true pts time and its slot.

    `short_side` downscales (never upscales) so the shorter side has that many pixels; `max_frames`
    caps fixed-rate and scene policies on long files (slots are then thinned uniformly); `workers`
    threads decode separate keyframe intervals (default: 2 for up to 64 frames; pass 1 when many
    videos are decoded in parallel already).
    """
    policy = parse_policy(policy)
    r = _Reader(path)
    try:
        if policy.kind == "scenes":
            spans = _scene_spans(r, policy.value, policy.min_seconds)
            r.seek(r.start_pts)
        else:
            spans = policy.slots(r.info())
        if max_frames and len(spans) > max_frames:
            keep = np.linspace(0, len(spans) - 1, max_frames).round().astype(int)
            spans = [spans[k] for k in keep]
        yield from _frames_at_parallel(r, [(a + b) / 2 for a, b in spans], spans, short_side, workers)
    finally:
        r.close()


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m clipprefix.video VIDEO [POLICY]")
    print(probe(sys.argv[1]))
    for fr in sample(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "uniform:8"):
        print(f"target {fr.target:8.3f} s  frame {fr.time:8.3f} s  {fr.image.shape}")
