"""All video decoding (PyAV): probing, and uniform / fixed-rate / per-scene frame sampling with true timestamps.

    info = video.probe("clip.mp4")                          # duration, fps, size after rotation, ...
    for f in video.sample("clip.mp4", video.uniform(16)):   # segment centres, never the very first frame
        f.image, f.time, f.span                             # upright RGB uint8, pts seconds, slot it stands for
    video.sample(path, "every:2") / video.fps(1) / video.scenes(0.1)

    python -m clipprefix.data.video clip.mp4 uniform:8           # prints the probe and the chosen timestamps

Frame choice: for a target time t the frame returned is the one on screen at t (the last frame with
pts <= t), also on variable-frame-rate files. Frames are decoded forward and the file is re-seeked only
when a keyframe lies between the current position and the next target (seeking per target is up to 4x
slower than decoding on). Only the frames handed out are converted to RGB, optionally straight to a
smaller size in libswscale. Memory stays bounded: everything is a generator holding two frames.
Unreadable files raise `ClipPrefixError` naming the file and the reason.
"""
from __future__ import annotations

import bisect
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..base.errors import ClipPrefixError
from .sampling import Sampling, every, fps, parse_policy, scenes, uniform
from .video_reader import _NO_INDEX_SEEK_S, Frame, VideoInfo, VideoReader, probe

__all__ = ["Frame", "Sampling", "VideoInfo", "VideoReader", "detect_scenes", "every", "fps", "frames_at", "iter_frames",
           "parse_policy", "probe", "sample", "scenes", "uniform"]     # video.X: one place for what reads video


# ------------------------------------------------------------------ frames at given times
def _to_array(r: VideoReader, frame, short_side: int | None) -> np.ndarray:
    """RGB at the display size (non-square pixels made square), `short_side` at most, upright."""
    w, h = frame.width, frame.height
    if r.sar != 1:
        w = max(1, round(w * r.sar))
    kw = {"width": w, "height": h, "interpolation": "BICUBIC"} if w != frame.width else {}
    s = min(w, h)
    if short_side and s > short_side:   # downscale only; swscale resizes during the colour conversion
        kw = dict(width=max(1, round(w * short_side / s)), height=max(1, round(h * short_side / s)),
                  interpolation="BICUBIC")
    arr = r.reformat(frame, format="rgb24", **kw)
    if r.rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=-r.rotation // 90))  # rot90 turns counter-clockwise
    return arr


def _frames_at(r: VideoReader, times: Sequence[float], spans=None, short_side: int | None = None) -> Iterator[Frame]:
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


def _runs(r: VideoReader, ticks: list[int], workers: int) -> list[int]:
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


def _frames_at_parallel(r: VideoReader, times: list[float], spans, short_side, workers: int | None) -> Iterator[Frame]:
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
        rr = VideoReader(r.path)
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
    r = VideoReader(path)
    try:
        yield from _frames_at_parallel(r, list(times), None, short_side, workers)
    finally:
        r.close()


def iter_frames(path: str | Path, *, short_side: int | None = None) -> Iterator[Frame]:
    """Every frame in presentation order (for live apps); still one frame in memory at a time."""
    r = VideoReader(path)
    try:
        while (f := r._next()) is not None:
            yield Frame(_to_array(r, f, short_side), float(f.pts * r.tb))
    finally:
        r.close()


# ------------------------------------------------------------------ scenes
def _scene_spans(r: VideoReader, threshold: float, min_seconds: float) -> list[tuple[float, float]]:
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
    r = VideoReader(path)
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
    r = VideoReader(path)
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
        sys.exit("usage: python -m clipprefix.data.video VIDEO [POLICY]")
    print(probe(sys.argv[1]))
    for fr in sample(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "uniform:8"):
        print(f"target {fr.target:8.3f} s  frame {fr.time:8.3f} s  {fr.image.shape}")
