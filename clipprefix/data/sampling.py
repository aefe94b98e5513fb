"""Frame sampling policies: which moments of a video stand for it (`uniform:16`, `every:2`, `fps:1`, `scenes`).

    parse_policy("uniform:16").slots(info)     # 16 equal slots; a frame is taken at each slot's centre
    str(scenes(0.2))                           # 'scenes:0.2': how caches name the policy that made them
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..base.errors import ClipPrefixError
from .video_reader import VideoInfo


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
