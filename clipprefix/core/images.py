"""Images in: paths, PIL images and arrays become RGB PIL images, or one sentence saying why not.

    open_image("cat.jpg")          # RGB PIL image; ClipPrefixError for a missing, broken or bomb file
    to_pil(array_or_pil)           # RGB PIL image from an HxWx3 / HxW uint8 array or any PIL mode
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..base.errors import ClipPrefixError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def to_pil(image: Any) -> Image.Image:
    """Accept a PIL image or an HxWx3 (or HxW) uint8 array; return an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ClipPrefixError(f"Image arrays must be uint8, got {image.dtype}.")
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ClipPrefixError(f"Image arrays must be HxWx3, got shape {image.shape}.")
        return Image.fromarray(image[..., :3])
    raise ClipPrefixError(f"Cannot encode an object of type {type(image).__name__} as an image.")


def open_image(item: Any) -> Any:
    """A path becomes its RGB PIL image (one sentence when it cannot be read); anything else is returned
    as it is (`to_pil` checks it later)."""
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as im:
                return im.convert("RGB")
        except FileNotFoundError as e:
            raise ClipPrefixError(f"{item}: no such image file.") from e
        except Image.DecompressionBombError as e:
            raise ClipPrefixError(f"{item}: too many pixels to be a photo, refused as a possible decompression "
                                  f"bomb ({e}).") from e
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ClipPrefixError(f"{item}: not a readable image ({e}).") from e
    return item
