"""Drawing the synthetic scenes: shapes on a dark grey, mildly noisy background (numpy + PIL).

    draw_still(Still("red", "circle", "left"), rng)      # HxWx3 uint8
    motion_frames(Motion("blue", "square", "left to right"), rng, n_frames=24)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from ..base.errors import ClipPrefixError
from ..base.files import atomic_path
from .scenes import COLOURS, SHAPES, Motion, Still


def _background(rng: np.random.Generator, width: int, height: int, grey: tuple[float, float] = (35, 95)) -> np.ndarray:
    grey = rng.uniform(*grey)                  # dark-ish grey, different per item
    tint = rng.uniform(-6, 6, size=3)          # a faint colour cast so items are not all one grey
    noise = rng.normal(0.0, 6.0, size=(height, width, 1))  # mild luminance noise
    return np.clip(grey + tint + noise, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    base = np.array(COLOURS[name], dtype=float) + rng.uniform(-18, 18, size=3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        s = r * 0.9  # same visual area as the circle, roughly
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r * 1.05, cy + r * 0.8), (cx + r * 1.05, cy + r * 0.8)], fill=fill)
    else:
        raise ClipPrefixError(f"Unknown synthetic shape {shape!r}; use one of {', '.join(SHAPES)}.")


def draw_still(still: Still, rng: np.random.Generator, size: tuple[int, int] = (96, 96), *,
               grey: tuple[float, float] = (35, 95)) -> np.ndarray:
    """Render a `Still` as an HxWx3 uint8 array; two shapes sit side by side along the region's long axis.
    `grey` is the range the background level is drawn from (0-255)."""
    w, h = size
    m = min(w, h)
    img = Image.fromarray(_background(rng, w, h, grey))
    draw = ImageDraw.Draw(img)
    fill = _colour(rng, still.colour)
    # region centre (fractions of the frame), jittered so positions vary within the region
    horizontal = still.position in ("left", "right")
    cx = {"left": 0.25, "right": 0.75}.get(still.position, 0.5) + rng.uniform(-0.04, 0.04)
    cy = {"top": 0.25, "bottom": 0.75}.get(still.position, 0.5) + rng.uniform(-0.04, 0.04)
    if still.count == 1:
        r = rng.uniform(0.12, 0.16) * m
        _draw(draw, still.shape, cx * w, cy * h, r, fill)
    else:
        r = rng.uniform(0.08, 0.10) * m
        gap = rng.uniform(0.17, 0.21)
        for sgn in (-1, 1):
            if horizontal:   # left/right regions are tall: stack along y
                _draw(draw, still.shape, cx * w, (cy + sgn * gap) * h, r, fill)
            else:            # top/bottom regions are wide: side by side along x
                _draw(draw, still.shape, (cx + sgn * gap) * w, cy * h, r, fill)
    return np.asarray(img)


def motion_frames(motion: Motion, rng: np.random.Generator, size: tuple[int, int] = (128, 96),
                  n_frames: int = 24, *, grey: tuple[float, float] = (35, 95)) -> Iterable[np.ndarray]:
    """Yield the frames of a `Motion` clip: the shape travels from 15% to 85% of the frame."""
    w, h = size
    bg = _background(rng, w, h, grey)
    fill = _colour(rng, motion.colour)
    r = rng.uniform(0.12, 0.16) * min(w, h)
    cross = rng.uniform(0.4, 0.6)          # where on the other axis the path runs
    a, b = motion.direction.split(" to ")
    start = {"left": 0.15, "top": 0.15, "right": 0.85, "bottom": 0.85}[a]
    end = {"left": 0.15, "top": 0.15, "right": 0.85, "bottom": 0.85}[b]
    horizontal = a in ("left", "right")
    for i in range(n_frames):
        t = start + (end - start) * i / max(1, n_frames - 1)
        img = Image.fromarray(bg)
        cx, cy = (t * w, cross * h) if horizontal else (cross * w, t * h)
        _draw(ImageDraw.Draw(img), motion.shape, cx, cy, r, fill)
        yield np.asarray(img)


def write_image(path: str | Path, array: np.ndarray, quality: int = 92) -> Path:
    """Write an RGB array as JPEG (or PNG for a .png name), atomically."""
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path
