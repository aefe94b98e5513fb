"""Captions drawn onto pictures: under an image (`--render`), or burned into a frame (preview, live).

    img = caption_under("cat.jpg", "a cat on a sofa")          # PIL image: the picture + a text band
    arr = burn_in(frame_rgb, "a cat on a sofa", extra="12 fps")  # same-size uint8 array, text at the bottom

Any script: characters are drawn with the first font that has them, from a chain of fonts with wide
Unicode coverage (Noto, DejaVu, Arial Unicode, Droid/WenQuanYi for CJK, ...; `CLIPPREFIX_FONT` puts
yours first) ending with the DejaVu Sans that matplotlib ships, so there is always a real font.
Coverage is read from each font's character map (fontTools); a character no font has is drawn as the
first font's placeholder box rather than failing. Lines wrap on pixel width (CJK between any two
characters); with libraqm, Pillow shapes Arabic and Indic runs, and right-to-left lines are laid out
from the right edge. Burned-in captions scale with the frame (never below `MIN_FONT_PX`), wrap at
word boundaries (the font shrinks before a word is split) and cover at most a third of the frame.
"""
from __future__ import annotations

import functools
import glob
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from ..base.errors import ClipPrefixError
from ..base.files import atomic_path
from ..core.images import open_image, to_pil
from ..core.text import is_rtl

_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts"),
         str(Path.home() / ".local/share/fonts"), "/Library/Fonts", "/System/Library/Fonts",
         "/System/Library/Fonts/Supplemental", "C:/Windows/Fonts"]
# Preferred files (any directory above), widest coverage first; per-script Noto files are added after.
MIN_FONT_PX = 8      # the smallest font a caption is burned in with (still readable)
MAX_UPSCALE = 8      # caption_under enlarges a small picture at most this many times
_PREFERRED = ["NotoSans-Regular.ttf", "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf",
              "DejaVuSans.ttf", "Arial Unicode.ttf", "arialuni.ttf", "segoeui.ttf", "msyh.ttc",
              "DroidSansFallbackFull.ttf", "wqy-microhei.ttc", "wqy-zenhei.ttc", "Arial.ttf", "FreeSans.ttf"]


# ------------------------------------------------------------------ fonts
@functools.lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Font files to draw with, in order of preference (found once per process)."""
    found: dict[str, str] = {}
    for d in _DIRS:
        if os.path.isdir(d):
            for p in glob.glob(os.path.join(d, "**", "*.[ot]t[fc]"), recursive=True):
                found.setdefault(os.path.basename(p), p)
    chain = [os.environ["CLIPPREFIX_FONT"]] if os.path.isfile(os.environ.get("CLIPPREFIX_FONT", "")) else []
    chain += [found[n] for n in _PREFERRED if n in found]
    chain += sorted(p for n, p in found.items() if re.match(r"Noto(Sans|Naskh|Kufi)\w*-Regular\.[ot]t[fc]$", n))
    chain.append(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))
    return tuple(dict.fromkeys(p for p in chain if os.path.isfile(p)))


@functools.lru_cache(maxsize=64)
def _coverage(path: str) -> frozenset[int] | None:
    """Code points the font has glyphs for (None: unknown, assume all)."""
    try:
        with TTFont(path, fontNumber=0, lazy=True) as f:
            return frozenset(f.getBestCmap() or ())
    except Exception:  # noqa: BLE001 - an unreadable font file is skipped, not fatal
        return None


@functools.lru_cache(maxsize=32)
def _fonts(size: int) -> tuple[tuple[Any, frozenset[int] | None], ...]:
    chain = []
    for p in font_files():
        try:
            chain.append((ImageFont.truetype(p, size), _coverage(p)))
        except OSError:
            continue
    if not chain:   # no TrueType font anywhere: Pillow's built-in one (Latin only)
        chain.append((ImageFont.load_default(size), None))
    return tuple(chain)


def _font_for(ch: str, chain) -> Any:
    cp = ord(ch)
    if ch.isspace() or unicodedata.category(ch).startswith("M"):
        return None   # spaces and combining marks stay with the run they are in
    for font, cov in chain:
        if cov is None or cp in cov:
            return font
    return chain[0][0]


def _runs(text: str, chain) -> list[tuple[Any, str]]:
    """Split text into (font, substring) runs."""
    runs: list[list] = []
    for ch in text:
        f = _font_for(ch, chain) or (runs[-1][0] if runs else chain[0][0])
        if runs and runs[-1][0] is f:
            runs[-1][1] += ch
        else:
            runs.append([f, ch])
    return [(f, s) for f, s in runs]


def text_width(text: str, size: int) -> float:
    chain = _fonts(size)
    return sum(f.getlength(s) for f, s in _runs(text, chain))


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def wrap_pixels(text: str, size: int, max_width: float, *, break_words: bool = True) -> list[str]:
    """Greedy wrap on rendered width; breaks at spaces, and between any two CJK characters; a word wider
    than a line is cut (`break_words`) or left whole."""
    tokens = _tokens(" ".join(text.split()))
    lines: list[str] = []
    cur = ""
    for tok in tokens:
        cand = cur + tok
        if cur and text_width(cand.rstrip(), size) > max_width:
            lines.append(cur.rstrip())
            cur = tok.lstrip()
            while break_words and text_width(cur.rstrip(), size) > max_width and len(cur) > 1:   # a word wider than a line
                k = len(cur) - 1
                while k > 1 and text_width(cur[:k], size) > max_width:
                    k -= 1
                lines.append(cur[:k])
                cur = cur[k:]
        else:
            cur = cand
    if cur.strip() or not lines:
        lines.append(cur.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Break opportunities: a word plus its trailing space, or a single wide (CJK) character."""
    out, cur = [], ""
    for ch in text:
        if _is_wide(ch):
            if cur:
                out.append(cur)
            out.append(ch)
            cur = ""
        elif ch == " ":
            cur += ch
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def _draw_line(draw: ImageDraw.ImageDraw, xy: tuple[float, float], line: str, size: int, fill) -> None:
    """Draw one line at (left, baseline), switching fonts per run; the runs of a right-to-left line go
    from its right end leftwards (libraqm orders the characters inside each run)."""
    x, y = xy
    runs = _runs(line, _fonts(size))
    if is_rtl(line):
        x += sum(font.getlength(s) for font, s in runs)
        for font, s in runs:
            x -= font.getlength(s)
            draw.text((x, y), s, font=font, fill=fill, anchor="ls")
        return
    for font, s in runs:
        draw.text((x, y), s, font=font, fill=fill, anchor="ls")
        x += font.getlength(s)


def _metrics(size: int) -> tuple[int, int]:
    """(ascent, descent) in pixels of the first font: the line box every line is laid out in."""
    font = _fonts(size)[0][0]
    return font.getmetrics() if hasattr(font, "getmetrics") else (size, size // 4)


# ------------------------------------------------------------------ public drawing
def _as_pil(image: Any) -> Image.Image:
    return to_pil(open_image(image))


def caption_under(image: Any, text: str, *, min_width: int = 384, font_size: int | None = None,
                  background=(255, 255, 255), color=(20, 20, 20)) -> Image.Image:
    """The image (enlarged towards `min_width` pixels wide, at most `MAX_UPSCALE` times, and centred) with
    `text` wrapped in a band below it; right-to-left lines are right-aligned."""
    img = _as_pil(image)
    if img.width < min_width:
        scale = min(min_width / img.width, MAX_UPSCALE)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    w = max(img.width, min_width)
    size = font_size or max(14, round(w / 28))
    pad = max(6, size // 2)
    lines = wrap_pixels(text, size, w - 2 * pad)
    ascent, descent = _metrics(size)
    line_h = round((ascent + descent) * 1.15)
    band = 2 * pad + line_h * len(lines)
    out = Image.new("RGB", (w, img.height + band), background)
    out.paste(img, ((w - img.width) // 2, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        x = w - pad - text_width(line, size) if is_rtl(line) else pad
        _draw_line(draw, (x, img.height + pad + i * line_h + ascent), line, size, color)
    return out


def _fit(text: str, extra: str, width: int, height: int) -> tuple[int, int, int, list[str]]:
    """(font size, padding, line height, lines) of a burned-in caption: the font scales with the frame
    (`MIN_FONT_PX` at least) and shrinks until whole words fit the width and the lines a third of the
    height; at the smallest size words are cut and what does not fit ends in '…'."""
    size = max(MIN_FONT_PX, min(12, height // 10), round(min(width, height * 16 / 9) / 32))
    while True:
        smallest = size <= MIN_FONT_PX
        pad = max(1, size // 4)
        ascent, descent = _metrics(size)
        line_h = round((ascent + descent) * 1.1)
        room = max(1, (height // 3 - 2 * pad) // line_h)       # lines that fit in a third of the frame
        keep = min(room - bool(extra), 3)                      # at most 3 caption lines, as ever
        lines = wrap_pixels(text, size, width - 2 * pad, break_words=smallest) if text else []
        if smallest or (len(lines) <= keep and all(text_width(x, size) <= width - 2 * pad for x in lines)):
            break
        size -= 1
    if len(lines) > max(0, keep):
        lines = lines[:max(0, keep)]
        if lines:
            lines[-1] = lines[-1].rstrip(" .,;:") + "…"
    return size, pad, line_h, lines + ([extra] if extra else [])


@functools.lru_cache(maxsize=16)
def _banner(text: str, extra: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The caption box for a frame size, rendered once: (RGB patch, alpha (h, w, 1) 0-1, top row)."""
    size, pad, line_h, lines = _fit(text, extra, width, height)
    ascent, _ = _metrics(size)
    if width < 2 * pad + text_width("a", size):      # no letter fits (a 1- or 2-pixel-wide frame): no box
        lines = []
    box_h = min(height, 2 * pad + line_h * len(lines)) if lines else 0
    layer = Image.new("RGBA", (width, box_h), (0, 0, 0, 150))
    draw = ImageDraw.Draw(layer)
    for i, line in enumerate(lines):
        color = (255, 255, 255, 255) if (i < len(lines) - 1 or not extra) else (255, 220, 90, 255)
        lw = text_width(line, size)
        _draw_line(draw, ((width - lw) / 2, pad + i * line_h + ascent), line, size, color)
    arr = np.asarray(layer)
    return arr[..., :3].astype(np.float32), arr[..., 3:].astype(np.float32) / 255.0, height - box_h


def burn_in(frame: np.ndarray, text: str, extra: str = "") -> np.ndarray:
    """A copy of `frame` (HxWx3 uint8 RGB) with `text` (and a second-colour `extra` line) in a
    translucent box at the bottom; the box is rendered once per text and frame size."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ClipPrefixError(f"burn_in needs an HxWx3 uint8 frame, got {frame.shape} {frame.dtype}.")
    h, w = frame.shape[:2]
    rgb, alpha, top = _banner(text, extra, w, h)
    out = frame.copy()
    region = out[top:].astype(np.float32)
    out[top:] = (region * (1 - alpha) + rgb * alpha + 0.5).astype(np.uint8)
    return out


def save_image(image: Image.Image, path: str | os.PathLike, quality: int = 92) -> Path:
    """Write a PIL image atomically (JPEG unless the name says .png)."""
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        image.convert("RGB").save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path
