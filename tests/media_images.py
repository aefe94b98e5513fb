"""Test support: image files of every awkward kind with the picture they must display (Pillow, numpy, stdlib).

    m = write_exif_jpeg(tmp_path, 6)       # stored turned, EXIF Orientation 6: displays as canonical_image()
    m.truth["display"]                     # the upright 8-bit RGB picture a viewer shows

`canonical_image()` is 96x64 with red, green, blue and yellow quadrants, so any flip, rotation or
transposition is visible (`media_checks.is_upright`). Nothing here imports clipprefix.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from media import Made

QUAD_COLORS = {"tl": (230, 30, 30), "tr": (30, 200, 40), "bl": (30, 60, 230), "br": (240, 220, 20)}


def canonical_image(w: int = 96, h: int = 64) -> np.ndarray:
    a = np.empty((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = QUAD_COLORS["tl"]
    a[: h // 2, w // 2:] = QUAD_COLORS["tr"]
    a[h // 2:, : w // 2] = QUAD_COLORS["bl"]
    a[h // 2:, w // 2:] = QUAD_COLORS["br"]
    return a


def stored_for_orientation(canon: np.ndarray, o: int) -> np.ndarray:
    """Pure numpy (not Pillow's table): the stored pixels whose display under EXIF orientation `o` is `canon`.
    2 mirror, 3 rotate 180, 4 flip vertical, 5 transpose, 6 shown turned 90 cw, 7 transverse, 8 shown 90 ccw."""
    return {1: canon, 2: canon[:, ::-1], 3: canon[::-1, ::-1], 4: canon[::-1], 5: canon.transpose(1, 0, 2),
            6: np.rot90(canon, 1), 7: np.rot90(canon, 1)[:, ::-1], 8: np.rot90(canon, -1)}[o]


def write_exif_jpeg(folder, o: int) -> Made:
    stored = np.ascontiguousarray(stored_for_orientation(canonical_image(), o))
    ex = Image.Exif()
    ex[0x0112] = o
    path = Path(folder) / f"orient_{o}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=ex.tobytes())
    return Made(path, "image", {"orientation": o, "display": canonical_image()})


def write_corrupt_exif_jpeg(folder, name="bad_exif.jpg") -> Made:
    """A JPEG whose EXIF block is cut short: Pillow warns 'Corrupt EXIF data' when reading it."""
    ex = Image.Exif()
    ex[0x0112] = 6
    path = Path(folder) / name
    Image.fromarray(canonical_image()).save(path, quality=95, exif=ex.tobytes()[:20] + b"\xff" * 4)
    return Made(path, "image", {"display": canonical_image()})


def _gradient16(w=96, h=64) -> np.ndarray:
    a = np.tile(np.linspace(0, 65535, w).round().astype(np.uint16), (h, 1))
    a[h * 3 // 4:] //= 4
    return a


def write_png16_grey(folder, name="grey16.png") -> Made:
    """16-bit grey PNG (Pillow mode I;16); its 8-bit display is value >> 8."""
    a = _gradient16()
    path = Path(folder) / name
    Image.fromarray(a).save(path)
    return Made(path, "image", {"display": np.repeat((a >> 8).astype(np.uint8)[..., None], 3, axis=2)})


def _png_chunk(typ: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def write_png16_rgb(folder, name="rgb16.png") -> Made:
    """16-bit RGB PNG written by hand (Pillow cannot save one); display = each sample >> 8."""
    g = _gradient16()
    rgb = np.stack([g, g[:, ::-1], np.full_like(g, 0x8000)], axis=-1)
    h, w = g.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + _png_chunk(b"IDAT", zlib.compress(raw, 6)) + _png_chunk(b"IEND", b""))
    path = Path(folder) / name
    path.write_bytes(png)
    return Made(path, "image", {"display": (rgb >> 8).astype(np.uint8)})


def write_tiff_float(folder, name="float32.tif") -> Made:
    """32-bit float TIFF (mode F), a 0..1 ramp; display = v * 255."""
    a = np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1))
    path = Path(folder) / name
    Image.fromarray(a, mode="F").save(path)
    return Made(path, "image", {"display": np.repeat((a * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)})


def _ink() -> np.ndarray:
    """Black ink in the middle, everything else fully transparent with a hidden black colour."""
    alpha = np.zeros((64, 96), np.uint8)
    alpha[16:48, 24:72] = 255
    return alpha


def _on_white(alpha: np.ndarray) -> np.ndarray:
    disp = np.full((*alpha.shape, 3), 255, np.uint8)
    disp[alpha > 0] = 0
    return disp


def write_rgba_png(folder, name="rgba.png") -> Made:
    alpha = _ink()
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 3] = alpha
    path = Path(folder) / name
    Image.fromarray(rgba, "RGBA").save(path)
    return Made(path, "image", {"display": _on_white(alpha)})


def write_la_png(folder, name="la.png") -> Made:
    alpha = _ink()
    la = np.zeros((64, 96, 2), np.uint8)
    la[..., 1] = alpha
    path = Path(folder) / name
    Image.fromarray(la, "LA").save(path)
    return Made(path, "image", {"display": _on_white(alpha)})


def write_palette_transparent_png(folder, name="palette_trns.png") -> Made:
    """Mode P with a tRNS of several alphas (Pillow warns about it on convert('RGB')): index 0 black fully
    transparent, 1 dark blue opaque, 2 green at alpha 128."""
    idx = np.zeros((64, 96), np.uint8)
    idx[16:48, 24:72] = 1
    idx[:8, :8] = 2
    im = Image.fromarray(idx, "P")
    im.putpalette([0, 0, 0, 0, 0, 160, 0, 255, 0] + [0] * (768 - 9))
    path = Path(folder) / name
    im.save(path, transparency=bytes([0, 255, 128]))
    disp = np.full((64, 96, 3), 255, np.uint8)
    disp[idx == 1] = (0, 0, 160)
    disp[idx == 2] = (127, 255, 127)        # green at 50 % over white
    return Made(path, "image", {"display": disp})


def write_cmyk_jpeg(folder, name="cmyk.jpg") -> Made:
    path = Path(folder) / name
    Image.fromarray(canonical_image()).convert("CMYK").save(path, quality=95)
    return Made(path, "image", {"display": canonical_image()})


def write_mpo(folder, name="stereo.mpo") -> Made:
    canon = canonical_image()
    path = Path(folder) / name
    Image.fromarray(canon).save(path, format="MPO", save_all=True, append_images=[Image.fromarray(canon[:, ::-1].copy())],
                                quality=95)
    return Made(path, "image", {"display": canon})


def write_avif(folder, name="photo.avif") -> Made:
    path = Path(folder) / name
    Image.fromarray(canonical_image()).save(path, format="AVIF", quality=90)
    return Made(path, "image", {"display": canonical_image()})


def write_png_named_jpg(folder, name="really_png.jpg") -> Made:
    path = Path(folder) / name
    Image.fromarray(canonical_image()).save(path, format="PNG")
    return Made(path, "image", {"display": canonical_image()})


def make_fifo(folder, name="x.jpg") -> Made:
    """A named pipe called x.jpg: opening it for reading blocks until a writer appears."""
    path = Path(folder) / name
    os.mkfifo(path)
    return Made(path, "fifo", {})
