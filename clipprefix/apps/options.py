"""What the apps share: loading a captioner once per process, and the decoding / dtype / output options
their command lines take."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..base.errors import ClipPrefixError
from ..core.captioner import Captioner
from ..core.encoder import resolve_dtype
from ..core.presets import resolve

DEFAULT_MODEL = "clipcap-coco"


_LOADED: dict[tuple, Any] = {}


def load_captioner(model: str, device: str = "auto", dtype: str = "fp32"):
    """`Captioner.from_pretrained(model)` on `device` ("auto": the first GPU when there is one) in `dtype`
    (fp32, bf16 or fp16: CLIP, mapper and LM), kept per process (notebooks, widgets and tests reuse it)."""
    torch_dtype = resolve_dtype(dtype)
    folder = resolve(model)
    cfg = folder / "config.json"
    key = (str(folder.resolve()), cfg.stat().st_mtime_ns, str(device), torch_dtype)
    if key not in _LOADED:
        _LOADED.clear()        # one model at a time: they can be large
        _LOADED[key] = Captioner.from_pretrained(folder, device=device, dtype=torch_dtype)
    return _LOADED[key]


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="weights and compute dtype; bf16 is about twice as fast on CPUs with bf16 units "
                        "(AVX512-BF16, AMX) and on GPUs, fp16 on GPUs")


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (default: the checkpoint's own settings)")
    g.add_argument("--strategy", choices=["greedy", "beam", "sample"])
    g.add_argument("--num-beams", type=int)
    g.add_argument("--length-penalty", type=float)
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--num-return-sequences", type=int, help="alternatives to return (beam / sample)")
    g.add_argument("--repetition-penalty", type=float)
    g.add_argument("--no-repeat-ngram-size", type=int)
    g.add_argument("--seed", type=int, help="sampling seed (reproducible sampling)")


def decoding_overrides(args) -> dict:
    keys = ("strategy", "num_beams", "length_penalty", "temperature", "top_k", "top_p", "max_new_tokens",
            "num_return_sequences", "repetition_penalty", "no_repeat_ngram_size", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_writable(folder: Path, what: str) -> None:
    """Fail early (before any work) when `folder` cannot be created or written."""
    p = Path(folder).expanduser().absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ClipPrefixError(f"The {what} {folder} cannot be created: {probe} is a file, not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ClipPrefixError(f"The {what} {folder} cannot be written: no write permission on {probe}.")
