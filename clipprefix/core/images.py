"""Images in: paths, PIL images and arrays become the RGB picture a viewer shows, or one sentence saying why not.

    open_image("cat.jpg")          # RGB PIL image; ClipPrefixError for a missing, broken or bomb file
    to_pil(array_or_pil)           # RGB PIL image from an HxWx3 / HxWx4 / HxW array or any PIL mode
    is_image("photo.avif")         # whether Pillow reads the file (by content, not by its name)

As displayed: the EXIF orientation is applied (phone photos are stored turned); 16-bit pictures keep
their high byte, 32-bit integer ones are scaled from their range, float ones from [0, 1] (or their
range when it is wider); transparency is composited on white; CMYK, palette and grey become RGB.
Pillow's warnings about files it reads anyway (damaged EXIF, palette transparency, large pictures)
are not shown: the filter is installed once, since `warnings.catch_warnings` is not safe in the
threads that read images in parallel.
"""
from __future__ import annotations

import os
import stat
import struct
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..base.errors import ClipPrefixError

# names an image usually has (dataset folders; the apps decide by content, `is_image`)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif", ".mpo", ".heic", ".jxl",
              ".jp2", ".ppm", ".pgm", ".tga", ".ico", ".jfif"}
WHITE = (255, 255, 255)

warnings.filterwarnings("ignore", module=r"PIL\.")     # warnings raised by Pillow's own modules only


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Any integer or float array -> uint8 the way viewers scale it (uint16: the high byte; float: [0, 1])."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 1:
            return (a * 255 + 0.5).astype(np.uint8)
        if lo >= 0 and hi <= 255:
            return (a + 0.5).astype(np.uint8)
        return ((a - lo) * (255 / (hi - lo or 1)) + 0.5).astype(np.uint8)
    if a.dtype.kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if a.dtype.itemsize == 2 and a.dtype.kind == "u" or (lo >= 0 and 255 < hi <= 65535):
            return (a.astype(np.uint32) >> 8).astype(np.uint8)
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        return ((a.astype(np.float64) - lo) * (255 / (hi - lo or 1)) + 0.5).astype(np.uint8)
    raise ClipPrefixError(f"Image arrays must hold numbers, got {a.dtype}.")


def _on_white(rgba: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)), rgba).convert("RGB")


def _rgb(im: Image.Image) -> Image.Image:
    """A PIL image of any mode -> RGB as displayed (orientation, depth, transparency on white)."""
    im.load()                        # decoded here: a cut-off file fails now, inside its reader's error handling
    try:
        im = ImageOps.exif_transpose(im)
    except (ValueError, TypeError, KeyError, SyntaxError, OSError, struct.error):
        pass                         # EXIF too damaged to read an orientation from: shown as stored
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _to_uint8(np.asarray(im))
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    if ("A" in mode or "a" in mode or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info)
            or (mode == "P" and im.palette is not None and im.palette.mode == "RGBA")):
        return _on_white(im.convert("RGBA"))
    return im if mode == "RGB" else im.convert("RGB")


def to_pil(image: Any) -> Image.Image:
    """Accept a PIL image or an HxW / HxWx3 / HxWx4 array (any numeric dtype); return the RGB picture."""
    if isinstance(image, Image.Image):
        return _rgb(image)
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ClipPrefixError(f"Image arrays must be HxW, HxWx3 or HxWx4, got shape {image.shape}.")
        a = _to_uint8(image)
        if a.ndim == 2 or a.shape[2] == 1:
            a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
        if a.shape[2] == 4:
            return _on_white(Image.fromarray(np.ascontiguousarray(a), "RGBA"))
        return Image.fromarray(np.ascontiguousarray(a))
    raise ClipPrefixError(f"Cannot encode an object of type {type(image).__name__} as an image.")


def _regular(item) -> None:
    try:
        mode = os.stat(item).st_mode
    except FileNotFoundError as e:
        raise ClipPrefixError(f"{item}: no such image file.") from e
    if not stat.S_ISREG(mode):      # a named pipe would block the read until something writes to it
        what = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ClipPrefixError(f"{item}: not a regular file ({what}).")


def open_image(item: Any) -> Any:
    """A path becomes its RGB picture as displayed (one sentence when it cannot be read); anything else is
    returned as it is (`to_pil` converts it later)."""
    if isinstance(item, (str, bytes, os.PathLike)):
        _regular(item)
        try:
            with Image.open(item) as im:
                return _rgb(im)
        except FileNotFoundError as e:
            raise ClipPrefixError(f"{item}: no such image file.") from e
        except Image.DecompressionBombError as e:
            raise ClipPrefixError(f"{item}: too many pixels to be a photo, refused as a possible decompression "
                                  f"bomb ({e}).") from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ClipPrefixError(f"{item}: not a readable image ({e}).") from e
    return item


def is_image(path: str | os.PathLike) -> bool:
    """Whether Pillow recognises the file's content as an image (its header only; nothing is decoded)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
