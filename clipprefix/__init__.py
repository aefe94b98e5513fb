"""clipprefix: CLIP-prefix captioning of images and videos.

    from clipprefix import Captioner
    cap = Captioner.from_pretrained("clipcap-coco")      # or "tiny", a folder, a Hub id
    print(cap.caption_images(["photo.jpg"])[0].text)

Heavy modules (torch, open_clip, transformers) load on first use, so `import clipprefix` is quick.
"""
from __future__ import annotations

from .base import __version__

_LAZY = {
    "Captioner": ("core.captioner", "Captioner"),
    "Caption": ("core.captioner", "Caption"),
    "GenerationConfig": ("core.decoding", "GenerationConfig"),
    "ClipEncoder": ("core.encoder", "ClipEncoder"),
    "ClipPrefixModel": ("core.model", "ClipPrefixModel"),
    "MapperConfig": ("core.mappers", "MapperConfig"),
    "ClipPrefixError": ("base.errors", "ClipPrefixError"),
    "new_captioner": ("core.presets", "new_captioner"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'clipprefix' has no attribute {name!r}")
