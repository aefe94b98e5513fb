"""clipprefix: CLIP-prefix captioning of images and videos.

    from clipprefix import Captioner
    cap = Captioner.from_pretrained("clipcap-coco")      # or "tiny", a folder, a Hub id
    print(cap.caption_images(["photo.jpg"])[0].text)

The package's folders are its layers, each importing only those above it in this list (ARCHITECTURE.md):
base (errors, paths, files, Hub), fast (optional performance paths), core (mappers, model, decoding,
checkpoints, Captioner), data (video, datasets, feature caches, extraction), training, evaluation,
synthetic (synthetic data, the tiny preset), apps (CLI, subtitles, live, widgets, demo).
The names below load on first use, so `import clipprefix` is quick.
"""
from __future__ import annotations

import importlib

from .base import __version__
from .base.errors import show_in_notebooks

_LAZY = {
    "Captioner": ("core.captioner", "Captioner"),
    "Caption": ("core.captioner", "Caption"),
    "new_captioner": ("core.captioner", "new_captioner"),
    "GenerationConfig": ("core.generation", "GenerationConfig"),
    "ClipEncoder": ("core.encoder", "ClipEncoder"),
    "ClipPrefixModel": ("core.model", "ClipPrefixModel"),
    "MapperConfig": ("core.mappers", "MapperConfig"),
    "ClipPrefixError": ("base.errors", "ClipPrefixError"),
    "FeatureCache": ("data.cache", "FeatureCache"),
    "extract": ("data.extract", "extract"),
    "TrainConfig": ("training.config", "TrainConfig"),
    "train": ("training.trainer", "train"),
    "evaluate": ("evaluation.evaluate", "evaluate"),
    "make_gallery": ("evaluation.gallery", "make_gallery"),
    "caption_video": ("apps.video_captions", "caption_video"),
    "CaptionedImages": ("apps.display", "CaptionedImages"),
}

__all__ = ["__version__", *_LAZY]

show_in_notebooks()      # in Jupyter / IPython: a ClipPrefixError shows as its one sentence (base/errors.py)


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'clipprefix' has no attribute {name!r}")
