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
import re
import shutil
import tempfile
from pathlib import Path

import torch

from ..base.errors import ClipPrefixError

FORMAT = "clipprefix"
FORMAT_VERSION = 1
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def quiet_transformers() -> None:
    """No per-file progress bars or advisory warnings from transformers in our output."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def recover_folder(path: str | os.PathLike) -> None:
    """Put back the previous copy of folder `path` if a kill came between `write_folder`'s two renames
    (the old folder moved aside, the new one not yet in place)."""
    path = Path(path)
    if not path.exists():
        olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.rename(olds[-1], path)


def write_folder(path: str | os.PathLike, fill) -> Path:
    """Create folder `path` atomically: `fill(tmp_dir)` writes the files, then the folder is swapped in.

    Readers see the old folder or the new one, never a half-written one; a kill between the two renames
    leaves the old one aside, and `recover_folder` (run by every load and save) puts it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes owner-only folders; give the usual permissions
    old = None
    try:
        fill(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.rename(path, old)
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return path


def save_checkpoint(path, config: dict, mapper_state: dict, *, lm=None, tokenizer=None,
                    clip_dir: str | os.PathLike | None = None) -> Path:
    """Write a checkpoint folder. `lm`/`tokenizer`/`clip_dir` are stored when config marks them included."""
    from safetensors.torch import save_file

    from ..base import __version__

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


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint folder for a folder path, a preset name or a Hugging Face Hub id."""
    p = Path(name_or_path).expanduser()
    recover_folder(p)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ClipPrefixError(f"{p} is not a clipprefix checkpoint: it has no config.json.")
        return p
    if p.exists():
        raise ClipPrefixError(f"{p} is a file, but a checkpoint is a folder (for a ClipCap .pt file run `clipprefix convert`).")
    from .presets import PRESETS, resolve_preset

    name = str(name_or_path)
    if name in PRESETS:
        return resolve_preset(name)
    if _HUB_ID.match(name):
        from ..base.hub import hub_snapshot
        return hub_snapshot(name)
    raise ClipPrefixError(f"No checkpoint '{name}': it is not a folder, a preset ({', '.join(PRESETS)}) or a Hub id (owner/name).")


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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    f = folder / "model.safetensors"
    if not f.is_file():
        raise ClipPrefixError(f"{folder} has no model.safetensors, so it holds no mapper weights.")
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise ClipPrefixError(f"{f} is corrupt or truncated ({e}).") from e
    return {k[len("mapper."):]: v for k, v in tensors.items() if k.startswith("mapper.")}


def load_lm(folder: Path, lm_cfg: dict):
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    if lm_cfg.get("included"):
        return AutoModelForCausalLM.from_pretrained(str(folder / "lm"))
    from ..base.hub import from_hub
    return from_hub(AutoModelForCausalLM.from_pretrained, lm_cfg["name"], f"the language model {lm_cfg['name']}")


def load_tokenizer(folder: Path | None, tok_cfg: dict):
    from transformers import AutoTokenizer

    quiet_transformers()
    if tok_cfg.get("included"):
        return AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    from ..base.hub import from_hub
    return from_hub(AutoTokenizer.from_pretrained, tok_cfg["name"], f"the tokenizer {tok_cfg['name']}")
