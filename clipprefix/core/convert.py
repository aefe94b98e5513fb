"""Convert published checkpoints into clipprefix folders.

    clipprefix convert coco_weights.pt checkpoints/clipcap-coco          # ClipCap, MLP or transformer mapper
    clipprefix convert model.pt checkpoints/clip-gpt-S --kind clip-gpt   # clip-gpt-captioning S / L

Files are read with `torch.load(weights_only=True)`: plain tensors only, nothing executed.
ClipCap: `gpt.*` is a full GPT2LMHeadModel (old `attn.bias` / `attn.masked_bias` mask buffers are
dropped; `attn.c_attn.bias` is a real parameter and kept); `clip_project.*` is the mapper.
clip-gpt-captioning: `mp.*` is the mapper, `td.model.*` the GPT-2; `ie.*` (the frozen OpenAI CLIP
vision tower) is not needed: the encoder is rebuilt from open_clip's identical OpenAI weights.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..base.errors import ClipPrefixError
from .checkpoint import save_checkpoint
from .generation import CLIPCAP
from .mappers import MapperConfig, build_mapper

_OLD_BUFFERS = re.compile(r"\.attn\.(bias|masked_bias)$")
KINDS = ("auto", "clipcap", "clip-gpt")


def load_pt(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A legacy `.pt` state dict, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise ClipPrefixError(f"{path}: no such checkpoint file.")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt, truncated, not a torch file or not weights-only
        raise ClipPrefixError(f"{path} is not a readable PyTorch weights file ({type(e).__name__}).") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ClipPrefixError(f"{path} does not hold a state dict of tensors.")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def detect_kind(sd: dict) -> str:
    if any(k.startswith("clip_project.") for k in sd) and any(k.startswith("gpt.") for k in sd):
        return "clipcap"
    if any(k.startswith("mp.") for k in sd) and any(k.startswith("td.model.") for k in sd):
        return "clip-gpt"
    raise ClipPrefixError("The state dict is neither a ClipCap checkpoint (clip_project.*, gpt.*) "
                          "nor a clip-gpt-captioning one (mp.*, td.model.*).")


def gpt2_from_state_dict(sd: dict[str, torch.Tensor]):
    """A GPT2LMHeadModel whose config is read off the tensor shapes, with `sd` loaded into it."""
    sd = {k: v for k, v in sd.items() if not _OLD_BUFFERS.search(k)}
    wte = sd["transformer.wte.weight"]
    n_layer = len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")})
    n_embd = wte.shape[1]
    cfg = GPT2Config(vocab_size=wte.shape[0], n_positions=sd["transformer.wpe.weight"].shape[0], n_embd=n_embd,
                     n_layer=n_layer, n_head=max(1, n_embd // 64))   # every GPT-2 size uses 64-wide heads
    lm = GPT2LMHeadModel(cfg)
    sd.setdefault("lm_head.weight", wte)
    missing, unexpected = lm.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ClipPrefixError(f"The GPT-2 weights do not fit a GPT-2 of their own shapes "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
    return lm.eval()


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def convert_clipcap(sd: dict, *, clip_model: str | None = None, clip_pretrained: str | None = "openai",
                    normalize: bool | None = None, num_heads: int = 8):
    lm = gpt2_from_state_dict(_sub(sd, "gpt."))
    n_embd = lm.config.n_embd
    m = _sub(sd, "clip_project.")
    if "model.0.weight" in m:
        mapper = {"type": "mlp", "clip_dim": m["model.0.weight"].shape[1], "hidden": m["model.0.weight"].shape[0],
                  "prefix_length": m["model.2.weight"].shape[0] // n_embd, "n_embd": n_embd}
        trainable, default_norm = True, False     # published MLP checkpoints: fine-tuned GPT-2, raw CLIP vector
    elif "prefix_const" in m:
        layers = {k.split(".")[2] for k in m if k.startswith("transformer.layers.")}
        mapper = {"type": "transformer", "clip_dim": m["linear.weight"].shape[1],
                  "prefix_length": m["prefix_const"].shape[0], "clip_length": m["linear.weight"].shape[0] // n_embd,
                  "num_layers": len(layers), "num_heads": num_heads,
                  "mlp_ratio": m["transformer.layers.0.mlp.fc1.weight"].shape[0] / n_embd, "n_embd": n_embd}
        trainable, default_norm = False, True     # transformer checkpoint: frozen GPT-2, L2-normalised CLIP vector
    else:
        raise ClipPrefixError("The ClipCap mapper is neither an MLP (model.0.weight) nor a transformer (prefix_const).")
    d = mapper["clip_dim"]
    clip_model = clip_model or {512: "ViT-B-32", 640: "RN50x4", 768: "ViT-L-14"}.get(d)
    if clip_model is None:
        raise ClipPrefixError(f"Cannot tell which CLIP model gives {d}-d features; pass clip_model.")
    config = {
        "clip": {"model": clip_model, "pretrained": clip_pretrained, "output": "embed", "embed_dim": d,
                 "normalize": default_norm if normalize is None else normalize},
        "mapper": mapper,
        "lm": {"name": "gpt2", "trainable": trainable, "included": True},
        "tokenizer": {"name": "gpt2"},
        "generation": CLIPCAP.to_dict(),
        "converted_from": "clipcap",
    }
    return config, m, lm


def convert_clip_gpt(sd: dict, *, num_heads: int = 16):
    lm = gpt2_from_state_dict(_sub(sd, "td.model."))
    m = _sub(sd, "mp.")
    d = m["mapper.weight"].shape[1]
    layers = {k.split(".")[2] for k in m if k.startswith("transformer_encoder.layers.")}
    mapper = {"type": "encoder", "clip_dim": d, "n_embd": lm.config.n_embd,
              "prefix_length": m["mapper.weight"].shape[0] // lm.config.n_embd, "num_layers": len(layers),
              "num_heads": num_heads, "mlp_ratio": m["transformer_encoder.layers.0.linear1.weight"].shape[0] / d}
    clip_model = {768: "ViT-B-32", 1024: "ViT-L-14"}.get(d)
    if clip_model is None:
        raise ClipPrefixError(f"Cannot tell which CLIP model gives {d}-d pooled features.")
    config = {
        "clip": {"model": clip_model, "pretrained": "openai", "output": "pooled", "embed_dim": d, "normalize": False},
        "mapper": mapper,
        "lm": {"name": "gpt2" if lm.config.n_embd == 768 else "gpt2-medium", "trainable": True, "included": True},
        "tokenizer": {"name": "gpt2"},
        "generation": {"strategy": "greedy", "max_new_tokens": 40},
        "converted_from": "clip-gpt-captioning",
    }
    return config, m, lm


def convert_file(src: str | os.PathLike, target: str | os.PathLike, *, kind: str = "auto", **options) -> Path:
    """Convert a `.pt` file into a checkpoint folder at `target`; returns the folder."""
    if kind not in KINDS:
        raise ClipPrefixError(f"Unknown checkpoint kind '{kind}'; choose one of {', '.join(KINDS)}.")
    sd = load_pt(src)
    kind = detect_kind(sd) if kind == "auto" else kind
    if kind == "clipcap":
        config, mapper_state, lm = convert_clipcap(sd, **options)
    else:
        config, mapper_state, lm = convert_clip_gpt(sd)
    mapper = build_mapper(MapperConfig.from_dict(config["mapper"]))   # check the weights fit before writing
    try:
        mapper.load_state_dict(mapper_state)
    except RuntimeError as e:
        raise ClipPrefixError(f"The mapper weights in {src} do not fit a {config['mapper']['type']} mapper "
                              f"({str(e).splitlines()[0]}).") from e
    return save_checkpoint(target, config, mapper.state_dict(), lm=lm)
