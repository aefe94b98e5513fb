"""Named presets: ready checkpoints (`tiny`, the published ClipCap weights) and configs for new models.

    Captioner.from_pretrained("clipcap-coco")     # downloads coco_weights.pt once, converts, caches
    new_config("clipcap-transformer")              # a config to train from (see train.py)

Checkpoint presets resolve to a folder under `paths.cache_dir()/presets/<name>`, built on first use.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..base.errors import ClipPrefixError
from ..base.paths import cache_dir

CLIPCAP_GENERATION = {"strategy": "greedy", "max_new_tokens": 67, "stop_strings": ["."]}

# Configs for new captioners. `mapper.n_embd` is filled from the LM when the captioner is built.
CONFIGS: dict[str, dict] = {
    "clipcap-mlp": {   # ClipCap MLP mapper + fine-tuned GPT-2 (the published COCO / Conceptual recipe)
        "clip": {"model": "ViT-B-32", "pretrained": "openai", "output": "embed", "embed_dim": 512, "normalize": False},
        "mapper": {"type": "mlp", "clip_dim": 512, "prefix_length": 10},
        "lm": {"name": "gpt2", "trainable": True}, "tokenizer": {"name": "gpt2"},
        "generation": CLIPCAP_GENERATION,
    },
    "clipcap-transformer": {   # transformer mapper, frozen GPT-2
        "clip": {"model": "ViT-B-32", "pretrained": "openai", "output": "embed", "embed_dim": 512, "normalize": True},
        "mapper": {"type": "transformer", "clip_dim": 512, "prefix_length": 10, "clip_length": 10, "num_layers": 8},
        "lm": {"name": "gpt2", "trainable": False}, "tokenizer": {"name": "gpt2"},
        "generation": CLIPCAP_GENERATION,
    },
    "msrvtt-video": {   # video mapper over 16 ordered frames, frozen GPT-2
        "clip": {"model": "ViT-B-32", "pretrained": "openai", "output": "embed", "embed_dim": 512, "normalize": True},
        "mapper": {"type": "video", "clip_dim": 512, "prefix_length": 10, "num_layers": 4, "max_frames": 32},
        "lm": {"name": "gpt2", "trainable": False}, "tokenizer": {"name": "gpt2"},
        "frames": {"policy": "uniform", "n": 16},
        "generation": {"strategy": "greedy", "max_new_tokens": 30},
    },
    "tiny": {
        "clip": {"model": "tiny", "included": True, "output": "embed", "embed_dim": 128, "normalize": True},
        "mapper": {"type": "mlp", "clip_dim": 128, "prefix_length": 4},
        "lm": {"name": None, "trainable": False, "included": True}, "tokenizer": {"name": None, "included": True},
        "generation": {"strategy": "greedy", "max_new_tokens": 16},
    },
    "tiny-video": {
        "clip": {"model": "tiny", "included": True, "output": "embed", "embed_dim": 128, "normalize": True},
        "mapper": {"type": "video", "clip_dim": 128, "prefix_length": 4, "num_layers": 2, "num_heads": 4,
                   "max_frames": 16},
        "lm": {"name": None, "trainable": False, "included": True}, "tokenizer": {"name": None, "included": True},
        "frames": {"policy": "uniform", "n": 8},
        "generation": {"strategy": "greedy", "max_new_tokens": 16},
    },
}


@dataclass
class Preset:
    description: str
    build: Callable[[Path], None]


def new_config(name: str, **mapper_overrides) -> dict:
    """A copy of config `name` (see CONFIGS), mapper fields overridden by keyword."""
    if name not in CONFIGS:
        raise ClipPrefixError(f"Unknown config '{name}'; choose one of {', '.join(CONFIGS)}.")
    cfg = copy.deepcopy(CONFIGS[name])
    cfg["mapper"].update({k: v for k, v in mapper_overrides.items() if v is not None})
    if cfg["clip"]["model"] == "tiny":
        from ..synthetic.tiny import TINY_VERSION, tiny_clip_dir
        cfg["clip"]["source"] = str(tiny_clip_dir())
        cfg["clip"]["spec_name"] = f"tiny-clip-{TINY_VERSION}"   # the name ClipEncoder.load("tiny") records
    return cfg


def new_captioner(name: str, *, seed: int = 0, device: str = "cpu", **mapper_overrides):
    """An untrained captioner from config `name` (the tiny ones are built locally, the others download GPT-2)."""
    from .captioner import Captioner

    cfg = new_config(name, **mapper_overrides)
    if cfg["clip"]["model"] == "tiny":
        from transformers import AutoTokenizer

        from ..synthetic.tiny import tiny_lm, tiny_tokenizer_dir

        tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir()))
        lm = tiny_lm(len(tok), tok.eos_token_id, seed=seed)
        return Captioner.from_config(cfg, lm=lm, tokenizer=tok, device=device, seed=seed)
    return Captioner.from_config(cfg, device=device, seed=seed)


def _build_tiny(name: str) -> Callable[[Path], None]:
    def build(target: Path) -> None:
        new_captioner(name).save_pretrained(target)
    return build


def _build_clipcap(repo_id: str, filename: str) -> Callable[[Path], None]:
    def build(target: Path) -> None:
        from .convert import convert_file
        from ..base.hub import hub_file

        convert_file(hub_file(repo_id, filename), target, kind="clipcap", clip_model="ViT-B-32", clip_pretrained="openai")
    return build


PRESETS: dict[str, Preset] = {
    "tiny": Preset("untrained tiny captioner built from local code (tests, CI, demo)", _build_tiny("tiny")),
    "tiny-video": Preset("untrained tiny multi-frame captioner built from local code", _build_tiny("tiny-video")),
    "clipcap-coco": Preset("ClipCap MLP + fine-tuned GPT-2 trained on COCO (ViT-B/32)",
                           _build_clipcap("akhaliq/CLIP-prefix-captioning-COCO-weights", "coco_weights.pt")),
    "clipcap-conceptual": Preset("ClipCap MLP + fine-tuned GPT-2 trained on Conceptual Captions (ViT-B/32)",
                                 _build_clipcap("akhaliq/CLIP-prefix-captioning-conceptual-weights",
                                                "conceptual_weights.pt")),
}


def resolve_preset(name: str) -> Path:
    """The local checkpoint folder of preset `name`, built (or downloaded and converted) on first use."""
    if name not in PRESETS:
        raise ClipPrefixError(f"Unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    from ..synthetic.tiny import TINY_VERSION

    tag = f"{name}-{TINY_VERSION}" if name.startswith("tiny") else name
    target = cache_dir() / "presets" / tag
    if not (target / "config.json").is_file():
        PRESETS[name].build(target)
    return target
