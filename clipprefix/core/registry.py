"""Models built from local code instead of downloaded: local kits, named here, built by their owners.

    kit("tiny").clip_dir()        # the tiny open_clip tower's folder (built once, cached)

The `tiny` preset (tests, CI, the demo, notebooks' smoke mode) is trained from the synthetic data, so
its builders live in `clipprefix.synthetic.tiny`, a layer above the core. The core never imports that
package: this table names it, and it is imported only when a config or `ClipEncoder.load` asks for the
kit by name. A kit module provides:

    VERSION                                   a tag that changes when its builders do (cache folders carry it)
    clip_dir() -> Path                        an open_clip `local-dir:` folder
    tokenizer_dir() -> Path                   a transformers tokenizer folder
    new_lm(vocab_size, eos_token_id, seed)    a freshly initialised transformers causal LM
    build_checkpoint(config_name, target, **options)   a checkpoint folder for one of the kit's presets
                                              (options: the preset's further build entries, e.g. trained)
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..base.errors import ClipPrefixError

KITS = {"tiny": "clipprefix.synthetic.tiny"}


def is_kit(name: str | None) -> bool:
    return name in KITS


def kit(name: str) -> ModuleType:
    """The module that builds local kit `name`."""
    if name not in KITS:
        raise ClipPrefixError(f"Unknown local model kit '{name}'; known: {', '.join(KITS)}.")
    return importlib.import_module(KITS[name])


def clip_name(name: str) -> str:
    """The model name a kit's CLIP tower records in encoder specs (caches and checkpoints check it)."""
    return f"{name}-clip-{kit(name).VERSION}"
