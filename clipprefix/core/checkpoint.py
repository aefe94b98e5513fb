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

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

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


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-file progress bars or advisory warnings from transformers while the block loads or saves;
    the user's own settings (verbosity, progress bars) are back afterwards."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def save_checkpoint(path, config: dict, mapper_state: dict, *, lm=None, tokenizer=None,
                    clip_dir: str | os.PathLike | None = None) -> Path:
    """Write a checkpoint folder. `lm`/`tokenizer`/`clip_dir` are stored when config marks them included."""
    config = dict(config, format=FORMAT, format_version=FORMAT_VERSION, clipprefix_version=__version__)

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

    with quiet_transformers():
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


def load_lm(folder: Path, lm_cfg: dict, **hub):
    """The LM stored in the checkpoint, or the one it names on the Hub (`hub`: token=, cache_dir=)."""
    with quiet_transformers():
        if lm_cfg.get("included"):
            return AutoModelForCausalLM.from_pretrained(str(folder / "lm"))
        return from_hub(AutoModelForCausalLM.from_pretrained, lm_cfg["name"], f"the language model {lm_cfg['name']}",
                        **hub)


def tokenizer_from_folder(folder: str | os.PathLike):
    """A transformers tokenizer saved in `folder`."""
    with quiet_transformers():
        return AutoTokenizer.from_pretrained(str(folder))


def load_tokenizer(folder: Path | None, tok_cfg: dict, **hub):
    """The tokenizer stored in the checkpoint, or the one it names on the Hub (`hub`: token=, cache_dir=)."""
    with quiet_transformers():
        if tok_cfg.get("included"):
            return AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        return from_hub(AutoTokenizer.from_pretrained, tok_cfg["name"], f"the tokenizer {tok_cfg['name']}", **hub)


def optimizer_tensors(opt: torch.optim.Optimizer, names: list[str]) -> tuple[dict, dict]:
    """An optimizer's state as safetensors-ready tensors (`optim/<param name>/<slot>`) and JSON (its groups)."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"optim/{names[idx]}/{key}"] = value.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def load_optimizer(opt: torch.optim.Optimizer, names: list[str], tensors: dict, meta: dict) -> None:
    """The inverse of `optimizer_tensors`."""
    state: dict[int, dict] = {}
    index = {n: i for i, n in enumerate(names)}
    for key, value in tensors.items():
        if not key.startswith("optim/"):
            continue
        name, slot = key[len("optim/"):].rsplit("/", 1)
        if name not in index:
            raise ClipPrefixError(f"The saved optimizer state has a parameter '{name}' this model does not train.")
        state.setdefault(index[name], {})[slot] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
