"""CLIP image (and text) encoders through open_clip.

    enc = ClipEncoder.load("ViT-B-32", "openai")          # the encoder of the published ClipCap weights
    enc = ClipEncoder.load("tiny")                         # the local tiny tower (tests, CI, demo)
    feats = enc.encode_images([pil_or_uint8_array, ...])   # (N, D) float32

Preprocessing is the model's own (resize the shortest side with bicubic filtering, centre crop,
normalise with the model's mean/std), done per image in PIL and normalised as one batch.
"""
from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import open_clip
import torch
from PIL import Image

from ..fast import enabled as fast_enabled
from ..base.devices import resolve_device
from ..base.errors import ClipPrefixError
from ..base.hub import offline_message
from ..fast.cpu_linear import onednn_works, use_cpu_linear, use_stock_linear
from . import registry
from .images import to_pil

_INTERP = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def _local_name(folder: str) -> str:
    """A name for a local open_clip folder that changes when its weights do (caches check it)."""
    h = hashlib.sha256()
    for f in sorted(os.listdir(folder)):
        p = os.path.join(folder, f)
        if os.path.isfile(p):
            h.update(f.encode())
            with open(p, "rb") as fh:
                h.update(fh.read(1 << 20))   # the first MiB and the size identify a weights file well enough
            h.update(str(os.path.getsize(p)).encode())
    return f"local:{os.path.basename(folder.rstrip('/'))}:{h.hexdigest()[:12]}"


@dataclass
class PreprocessSpec:
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"


@functools.lru_cache(maxsize=1)
def _resize_pool():
    return ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="clip-resize")


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX) and this torch's oneDNN runs it."""
    cpu = getattr(torch, "cpu", None)
    has = any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return bool(has) and onednn_works(torch.bfloat16)


SHORT_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}   # as the CLIs spell them


def resolve_dtype(dtype: "str | torch.dtype | None", device: "str | torch.device" = "cpu") -> torch.dtype:
    """CLIP's compute dtype: a torch dtype, 'fp32'/'bf16'/'fp16', None (fp32), or 'auto': fp16 on CUDA
    (what OpenAI's `clip.load` gives there), bf16 on a CPU with bf16 units, fp32 otherwise. bf16 features
    agree with fp32's to a cosine of 0.9999 (benchmarks/bench_extract.py checks it, tests/test_encoders.py
    pins it on the tiny tower); caches store fp16 features either way."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {None: torch.float32, **{s: d for d, s in SHORT_NAMES.items()},
             **{str(d).removeprefix("torch."): d for d in SHORT_NAMES}}
    if dtype == "auto":
        kind = torch.device(device).type
        if kind == "cuda":
            return torch.float16
        return torch.bfloat16 if kind == "cpu" and native_bf16() else torch.float32
    if dtype not in names:
        raise ClipPrefixError(f"dtype must be auto, fp32, bf16 or fp16 (or float32, bfloat16, float16), got '{dtype}'.")
    return names[dtype]


def trained_with_quick_gelu(model: str, pretrained: str | None) -> bool:
    """Whether open_clip's tag `pretrained` of `model` was trained with QuickGELU (OpenAI's own weights,
    which ClipCap's checkpoints were trained on). open_clip 3 builds its `ViT-B-32` with nn.GELU and only
    warns when such weights are loaded into it; the features then drift from the real CLIP's."""
    if not pretrained or os.path.isfile(pretrained) or model.startswith(("local-dir:", "hf-hub:")):
        return False
    return bool((open_clip.get_pretrained_cfg(model, pretrained) or {}).get("quick_gelu"))


class ClipEncoder:
    """An open_clip model with batched preprocessing; `spec` identifies it (for caches and checkpoints).

    The encoder owns `model`: on a CPU with the fast paths on (`clipprefix.fast`; `fast=` overrides the
    switch) its nn.Linear and nn.MultiheadAttention layers run through `fast.cpu_linear` (the same weights),
    on any other device or with them off they are the stock modules."""

    def __init__(self, model: torch.nn.Module, spec: dict, tokenizer=None, *, normalize: bool = False,
                 device: str | torch.device = "auto", dtype: "torch.dtype | str | None" = None,
                 fast: bool | None = None):
        self.model = model.eval()
        self.fast = fast
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._place()
        self.normalize = normalize
        self.tokenizer = tokenizer
        pp = spec["preprocess"]
        self.pre = PreprocessSpec(pp["size"], tuple(pp["mean"]), tuple(pp["std"]),
                                  pp.get("interpolation", "bicubic"), pp.get("resize_mode", "shortest"))
        self.spec = dict(spec, normalize=normalize)
        self.embed_dim = int(spec["embed_dim"])
        self._mean = torch.tensor(self.pre.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(self.pre.std).view(1, 3, 1, 1)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, model: str = "ViT-B-32", pretrained: str | None = "openai", *, device: str | torch.device = "auto",
             dtype: "torch.dtype | str | None" = None, normalize: bool = False, cache_dir: str | None = None,
             weights: str | os.PathLike | None = None, output: str = "embed",
             name: str | None = None, fast: bool | None = None) -> "ClipEncoder":
        """Build an encoder from an open_clip architecture + pretrained tag, a weights file or a local dir,
        on `device` ("auto": the first GPU when there is one, else the CPU).

        `model="tiny"` gives the tiny local tower (a local kit, `registry.py`); `model="local-dir:/path"` an open_clip folder;
        `pretrained` may also be a path to a weights file (or pass `weights=`). `name` overrides the
        model name recorded in `spec` (a checkpoint's copy of the tiny tower keeps the tiny name). `output="pooled"` drops
        the final projection: the pooled, LayerNorm-ed class token (Hugging Face's `pooler_output`),
        which clip-gpt-captioning checkpoints were trained on.
        """
        if output not in ("embed", "pooled"):
            raise ClipPrefixError(f"CLIP output must be 'embed' or 'pooled', got '{output}'.")
        if model.startswith(("local-dir:", "hf-hub:")):
            pretrained = None
        if registry.is_kit(model):
            model, pretrained, name = f"local-dir:{registry.kit(model).clip_dir()}", None, registry.clip_name(model)
        if weights is not None:
            pretrained = str(weights)
        if pretrained and pretrained not in open_clip.list_pretrained_tags_by_model(model) \
                and not os.path.isfile(pretrained) and not model.startswith(("local-dir:", "hf-hub:")):
            raise ClipPrefixError(
                f"CLIP weights '{pretrained}' for {model} are neither a known open_clip tag "
                f"({', '.join(open_clip.list_pretrained_tags_by_model(model)) or 'none'}) nor an existing file.")
        quick_gelu = trained_with_quick_gelu(model, pretrained)
        try:
            net = open_clip.create_model(model, pretrained=pretrained, cache_dir=cache_dir, force_quick_gelu=quick_gelu)
        except (RuntimeError, OSError, ValueError) as e:
            raise ClipPrefixError(offline_message(f"CLIP weights {model}/{pretrained}", e)) from e
        if output == "pooled":
            net.visual.proj = None
            net.visual.output_dim = net.visual.ln_post.normalized_shape[0]
        pp = open_clip.get_model_preprocess_cfg(net)
        size = pp.get("size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        spec = {
            "model": name or (_local_name(model[len("local-dir:"):]) if model.startswith("local-dir:") else model),
            "pretrained": os.path.basename(pretrained) if pretrained and os.path.isfile(pretrained) else pretrained,
            "output": output,
            **({"activation": "quick_gelu"} if quick_gelu else {}),
            "embed_dim": int(net.visual.output_dim),
            "preprocess": {"size": int(size), "mean": list(pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                           "std": list(pp.get("std", open_clip.OPENAI_DATASET_STD)),
                           "interpolation": pp.get("interpolation", "bicubic"),
                           "resize_mode": pp.get("resize_mode", "shortest")},
        }
        try:
            tokenizer = open_clip.get_tokenizer(model)
        except Exception:  # noqa: BLE001 - text side is optional (CLIPScore only); image encoding still works
            tokenizer = None
        return cls(net, spec, tokenizer, normalize=normalize, device=device, dtype=dtype, fast=fast)

    def to(self, device=None, dtype=None) -> "ClipEncoder":
        """Move the model to `device` and/or `dtype` (as `resolve_dtype` reads it); returns self."""
        self.device = resolve_device(device) if device is not None else self.device
        self.dtype = resolve_dtype(dtype, self.device) if dtype is not None else self.dtype
        self._place()
        return self

    def _place(self) -> None:
        """The model on the encoder's device and dtype, with the CPU's fast layers exactly where they apply."""
        if self.device.type == "cpu" and fast_enabled(self.fast):
            use_cpu_linear(self.model)
        else:
            use_stock_linear(self.model)
        self.model.to(self.device, self.dtype)

    # ---------------------------------------------------------------- preprocessing
    def _resize_crop(self, img: Image.Image) -> np.ndarray:
        s = self.pre.size
        w, h = img.size
        if self.pre.resize_mode == "squash":
            img = img.resize((s, s), _INTERP[self.pre.interpolation])
        else:  # torchvision Resize(int): shortest side -> s, longer side truncated, then centre crop
            if w <= h:
                nw, nh = s, int(s * h / w)
            else:
                nw, nh = int(s * w / h), s
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), _INTERP[self.pre.interpolation])
            left = int(round((nw - s) / 2.0))
            top = int(round((nh - s) / 2.0))
            img = img.crop((left, top, left + s, top + s))
        return np.asarray(img, dtype=np.uint8)

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images / uint8 arrays -> normalised float tensor (N, 3, S, S) on the CPU."""
        if len(images) == 0:
            return torch.empty(0, 3, self.pre.size, self.pre.size)
        crops = (_resize_pool().map(lambda im: self._resize_crop(to_pil(im)), images) if len(images) > 1
                 else [self._resize_crop(to_pil(images[0]))])     # PIL resizes release the GIL: use every core
        x = torch.from_numpy(np.stack(list(crops))).permute(0, 3, 1, 2).float()
        return x.sub_(self._mean * 255.0).div_(self._std * 255.0)      # in place: one batch-sized buffer, not three

    # ---------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels (N, 3, S, S) -> image features (N, D), float32 on the encoder's device."""
        feats = self.model.encode_image(pixels.to(self.device, self.dtype)).float()
        return torch.nn.functional.normalize(feats, dim=-1) if self.normalize else feats

    def encode_images(self, images: Iterable[Any], batch_size: int = 64) -> torch.Tensor:
        """Images -> features (N, D) float32, computed in batches of `batch_size`."""
        images = list(images)
        out = [self.encode_pixels(self.preprocess(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> L2-normalised text features (N, D) (for CLIPScore)."""
        if self.tokenizer is None:
            raise ClipPrefixError(f"The CLIP model {self.spec['model']} has no text tokenizer, so it cannot score captions.")
        tokens = self.tokenizer(list(texts)).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
