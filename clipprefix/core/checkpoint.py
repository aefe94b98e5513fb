"""Self-describing checkpoint folders, and where to find them (folder, preset or Hub id).

    my-captioner/
      config.json          what to build: CLIP spec, mapper config, LM (name or included), tokenizer, generation
      model.safetensors    the mapper weights (`mapper.*`)
      lm/                  the LM (transformers save_pretrained) when it was fine-tuned or has no Hub name
      tokenizer/           the tokenizer when it has no Hub name (the tiny preset's)
      clip/                the open_clip tower when it has no pretrained tag (the tiny preset's)

Folders are written to a temporary sibling and renamed into place, so a crash leaves the old
checkpoint or the new one, never half of one. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from ..base import __version__
from ..base.errors import ClipPrefixError
from ..base.files import write_folder
from ..base.hub import from_hub

FORMAT = "clipprefix"
FORMAT_VERSION = 1


def quiet_transformers() -> None:
    """No per-file progress bars or advisory warnings from transformers in our output."""
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def save_checkpoint(path, config: dict, mapper_state: dict, *, lm=None, tokenizer=None,
                    clip_dir: str | os.PathLike | None = None) -> Path:
    """Write a checkpoint folder. `lm`/`tokenizer`/`clip_dir` are stored when config marks them included."""
    config = dict(config, format=FORMAT, format_version=FORMAT_VERSION, clipprefix_version=__version__)

    quiet_transformers()

    def fill(d: Path):
        tensors = {f"mapper.{k}": v.detach().to("cpu").contiguous() for k, v in mapper_state.items()}
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt", "clipprefix": str(FORMAT_VERSION)})
        if config["lm"].get("included"):
            lm.save_pretrained(str(d / "lm"))
        if config["tokenizer"].get("included"):
            tokenizer.save_pretrained(str(d / "tokenizer"))
        if config["clip"].get("included"):
            shutil.copytree(clip_dir, d / "clip")
        (d / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    return write_folder(path, fill)


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ClipPrefixError(f"{folder / 'config.json'} cannot be read as JSON ({e}).") from e
    if config.get("format") != FORMAT:
        raise ClipPrefixError(f"{folder} is not a clipprefix checkpoint (config.json has no \"format\": \"clipprefix\").")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ClipPrefixError(f"{folder} was written by a newer clipprefix (format {config['format_version']}); upgrade clipprefix.")
    return config


def load_mapper_state(folder: Path) -> dict[str, torch.Tensor]:
    f = folder / "model.safetensors"
    if not f.is_file():
        raise ClipPrefixError(f"{folder} has no model.safetensors, so it holds no mapper weights.")
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise ClipPrefixError(f"{f} is corrupt or truncated ({e}).") from e
    return {k[len("mapper."):]: v for k, v in tensors.items() if k.startswith("mapper.")}


def load_lm(folder: Path, lm_cfg: dict):
    quiet_transformers()
    if lm_cfg.get("included"):
        return AutoModelForCausalLM.from_pretrained(str(folder / "lm"))
    return from_hub(AutoModelForCausalLM.from_pretrained, lm_cfg["name"], f"the language model {lm_cfg['name']}")


def tokenizer_from_folder(folder: str | os.PathLike):
    """A transformers tokenizer saved in `folder`."""
    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(folder))


def load_tokenizer(folder: Path | None, tok_cfg: dict):
    quiet_transformers()
    if tok_cfg.get("included"):
        return AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    return from_hub(AutoTokenizer.from_pretrained, tok_cfg["name"], f"the tokenizer {tok_cfg['name']}")
