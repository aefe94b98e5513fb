"""`Captioner`: the user-facing API. Load a checkpoint, caption images, videos' frames or cached features.

    from clipprefix import Captioner
    cap = Captioner.from_pretrained("clipcap-coco")            # preset, folder or Hub id
    cap.caption_images("cat.jpg")[0].text                     # one image, or a list of them
    cap.caption_features(feats, num_beams=5)                   # feats (B, T, clip_dim) from a cache; beam search

Defaults follow the habits of transformers users: `device="auto"` (the GPU when there is one),
`dtype="bfloat16"` strings, `revision=` / `token=` / `cache_dir=` for Hub checkpoints, `num_beams=5`
alone for beam search and `do_sample=True` for sampling (generation.py), one image for a list of one.

Images and cached features enter the same path: CLIP features (B, T, D) -> mapper -> prefix -> decoding.
"""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import huggingface_hub
import numpy as np
import torch
from PIL import Image

from ..base.devices import resolve_device
from ..base.errors import ClipPrefixError
from . import registry
from .checkpoint import load_lm, load_mapper_state, load_tokenizer, read_config, save_checkpoint, tokenizer_from_folder
from .decoding import generate
from .encoder import ClipEncoder, resolve_dtype, trained_with_quick_gelu
from .generation import GenerationConfig
from .images import open_image
from .mappers import MapperConfig
from .model import ClipPrefixModel
from .model_card import model_card
from .presets import new_config, resolve
from .text import decode_text


@dataclass
class Caption:
    text: str
    tokens: list[int]
    logprobs: list[float]
    score: float
    alternatives: list[dict] = field(default_factory=list)   # further returned sequences: {"text", "score"}

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return self.text


class Captioner:
    def __init__(self, config: dict, model: ClipPrefixModel, tokenizer, *, folder: Path | None = None,
                 device: str | torch.device = "auto", dtype: "torch.dtype | str | None" = None, encoder=None,
                 fast: bool | None = None, hub: dict | None = None):
        self.config = config
        self.fast = fast                # None: the CLIPPREFIX_FAST switch (clipprefix.fast)
        self.model = model.eval()
        self._tokenizer = tokenizer
        self.folder = folder
        self._hub = hub or {}           # token= / cache_dir= for a tokenizer named on the Hub
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model.to(self.device, self.dtype)
        self._encoder = encoder
        self.generation = GenerationConfig.from_dict(config.get("generation", {}))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, device: str | torch.device = "auto",
                        dtype: "torch.dtype | str | None" = None, fast: bool | None = None, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | os.PathLike | None = None) -> "Captioner":
        """A captioner from a checkpoint folder, a preset (`clipprefix presets`) or a Hub id.

        `device`: "auto" (the first GPU when there is one, else the CPU), "cpu", "cuda:1", ...; `dtype`: a
        torch dtype or its name ("bfloat16", "bf16", "float16", ...; default fp32); `revision`, `token`,
        `cache_dir`: as huggingface_hub takes them, for a Hub id; `fast=False` runs stock transformers /
        torch (default: the CLIPPREFIX_FAST switch)."""
        hub = {k: v for k, v in {"token": token, "cache_dir": cache_dir}.items() if v is not None}
        folder = resolve(name_or_path, revision=revision, **hub)
        config = read_config(folder)
        lm = load_lm(folder, config["lm"], **hub)
        model = ClipPrefixModel(MapperConfig.from_dict(config["mapper"]), lm,
                                normalize=config["clip"].get("normalize", False),
                                train_lm=config["lm"].get("trainable", False), fast=fast)
        state = load_mapper_state(folder)
        try:
            model.mapper.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ClipPrefixError(f"The mapper weights in {folder} do not match its config.json ({first}).") from e
        return cls(config, model, None, folder=folder, device=device, dtype=dtype, fast=fast,   # tokenizer: on first use
                   hub=hub)

    @classmethod
    def from_config(cls, config: dict, *, lm=None, tokenizer=None, device: str | torch.device = "auto", seed: int = 0,
                    fast: bool | None = None) -> "Captioner":
        """A new captioner (freshly initialised mapper) from a config such as `presets.new_config(...)`: the
        LM and tokenizer by their Hub names, or built by the config's local kit (the tiny preset)."""
        config = copy.deepcopy(config)
        kit = registry.kit(config["kit"]) if config.get("kit") else None
        if tokenizer is None:
            tokenizer = tokenizer_from_folder(kit.tokenizer_dir()) if kit else load_tokenizer(None, config["tokenizer"])
        if lm is None:
            lm = kit.new_lm(len(tokenizer), tokenizer.eos_token_id, seed=seed) if kit else load_lm(None, config["lm"])
        config["mapper"]["n_embd"] = lm.get_input_embeddings().weight.shape[1]
        torch.manual_seed(seed)
        model = ClipPrefixModel(MapperConfig.from_dict(config["mapper"]), lm, normalize=config["clip"].get("normalize", False),
                                train_lm=config["lm"].get("trainable", False), fast=fast)
        return cls(config, model, tokenizer, device=device, fast=fast)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint folder (see `checkpoint.py`); the LM is included when it was fine-tuned."""
        config = copy.deepcopy(self.config)
        config["generation"] = self.generation.to_dict()
        if config["lm"].get("trainable") or not config["lm"].get("name"):
            config["lm"]["included"] = True
        clip_dir = self.clip_dir() if config["clip"].get("included") else None
        config["clip"].pop("source", None)          # a path on this machine; the folder gets its own copy
        lm = self.model.lm
        if self.dtype != torch.float32:   # checkpoints are stored in fp32 whatever the runtime dtype
            lm = copy.deepcopy(lm).float()
        state = {k: v.float() for k, v in self.model.mapper.state_dict().items()}
        tokenizer = self.tokenizer if config["tokenizer"].get("included") else None
        return save_checkpoint(path, config, state, lm=lm, tokenizer=tokenizer, clip_dir=clip_dir)

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload clipprefix captioner", metrics=None,
                    replace_card: bool = False) -> str:
        """Save to a temporary folder with a model card (README.md: what the model is, its training data and
        decoding defaults, `metrics` when given: an `EvalResult`, a metrics.json path or a dict) and upload
        it as Hub repo `repo_id`; returns the repo URL. A card already on the Hub is kept unless
        `replace_card`."""
        api = huggingface_hub.HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = self.save_pretrained(Path(tmp) / "ckpt")
            (ckpt / "README.md").write_text(model_card(read_config(ckpt), repo_id, metrics), encoding="utf-8")
            try:
                url = api.create_repo(repo_id, private=private, exist_ok=True)
                keep = not replace_card and api.file_exists(repo_id, "README.md")
                api.upload_folder(folder_path=str(ckpt), repo_id=repo_id, commit_message=commit_message,
                                  ignore_patterns=["README.md"] if keep else None)
            except Exception as e:  # noqa: BLE001 - any hub failure is one sentence for the user
                raise ClipPrefixError(f"Could not upload to the Hugging Face Hub repo {repo_id} ({type(e).__name__}: "
                                      f"{str(e).splitlines()[0] if str(e) else ''}); log in with `hf auth login` "
                                      "or pass token=.") from e
        return str(url)

    def to(self, device=None, dtype=None) -> "Captioner":
        """Move the model, and CLIP once loaded, to `device` ("auto" too) and/or `dtype` (a name too); returns self."""
        self.device = resolve_device(device) if device else self.device
        self.dtype = resolve_dtype(dtype, self.device) if dtype is not None else self.dtype
        self.model.to(self.device, self.dtype)
        if self._encoder is not None:
            self._encoder.to(self.device, self.dtype)
        return self

    # ------------------------------------------------------------------ parts
    def clip_dir(self) -> Path:
        if self.folder is not None and (self.folder / "clip").is_dir():
            return self.folder / "clip"
        source = self.config["clip"].get("source")
        if source:
            return Path(source)
        raise ClipPrefixError("This captioner's CLIP tower is not stored anywhere it can be copied from.")

    @property
    def tokenizer(self):
        """The LM's tokenizer, loaded on first use (scoring features needs none)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.folder, self.config["tokenizer"], **self._hub)
        return self._tokenizer

    @property
    def encoder(self):
        """The CLIP encoder named in the config, loaded on first use, in the captioner's device and dtype."""
        if self._encoder is None:
            c = self.config["clip"]
            if c.get("included"):
                self._encoder = ClipEncoder.load(f"local-dir:{self.clip_dir()}", None, device=self.device,
                                                 dtype=self.dtype, output=c.get("output", "embed"),
                                                 name=c.get("spec_name"), fast=self.fast)
            else:
                self._encoder = ClipEncoder.load(c["model"], c.get("pretrained"), device=self.device,
                                                 dtype=self.dtype, output=c.get("output", "embed"), fast=self.fast)
            if self._encoder.embed_dim != self.model.mapper_cfg.clip_dim:
                raise ClipPrefixError(f"The CLIP model gives {self._encoder.embed_dim}-d features but the mapper "
                                      f"expects {self.model.mapper_cfg.clip_dim}-d.")
        return self._encoder

    def check_cache(self, cache) -> None:
        """Raise `ClipPrefixError` unless a feature cache holds what this captioner's mapper reads: the same
        CLIP (model and weights), the same output, features no more normalised than the mapper expects."""
        clip, spec = self.config["clip"], cache.spec
        dim = self.model.mapper_cfg.clip_dim
        if cache.embed_dim != dim:
            raise ClipPrefixError(f"Feature cache {cache.root} holds {cache.embed_dim}-d features but the mapper "
                                  f"takes {dim}-d; extract features with this model's CLIP.")
        name = clip.get("spec_name") or (None if clip.get("included") else clip.get("model"))
        if name is not None and (spec.get("model"), spec.get("pretrained")) != (name, clip.get("pretrained")):
            raise ClipPrefixError(f"Feature cache {cache.root} was made with CLIP {spec.get('model')}/"
                                  f"{spec.get('pretrained')}, but this model reads {name}/{clip.get('pretrained')} "
                                  "features; extract them again with that CLIP.")
        if name is not None and spec.get("activation") is None and trained_with_quick_gelu(name, clip.get("pretrained")):
            raise ClipPrefixError(f"Feature cache {cache.root} was made with {name}/{clip.get('pretrained')} run with "
                                  "plain GELU, but those weights were trained with QuickGELU (earlier clipprefix "
                                  "versions built it so); extract the features again.")
        if spec.get("output", "embed") != clip.get("output", "embed"):
            raise ClipPrefixError(f"Feature cache {cache.root} holds CLIP '{spec.get('output')}' features but "
                                  f"this model takes '{clip.get('output', 'embed')}' features.")
        if spec.get("normalize") and not clip.get("normalize"):
            raise ClipPrefixError(f"Feature cache {cache.root} holds L2-normalised features but this model maps "
                                  "raw CLIP features; extract again without --normalize.")

    @property
    def is_video(self) -> bool:
        return self.model.mapper_cfg.type == "video"

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    def decode(self, tokens: Sequence[int]) -> str:
        text = decode_text(self.tokenizer, tokens)     # printable: no U+FFFD, no control characters
        for s in self.generation.stop_strings:
            if s in text:
                text = text[: text.index(s) + len(s)]
        return text.strip()

    # ------------------------------------------------------------------ captioning
    def caption_features(self, features, generation: GenerationConfig | None = None, *, batch_size: int = 64,
                         **overrides) -> list[Caption]:
        """Caption CLIP features: a tensor (B, T, D) / (B, D), or a list of (T, D) tensors."""
        gen = (generation or self.generation).updated(**overrides)
        gen.validate()
        if isinstance(features, torch.Tensor):
            features = features.unsqueeze(1) if features.dim() == 2 else features
            groups = [features]
        else:
            groups = [torch.as_tensor(f).reshape(-1, torch.as_tensor(f).shape[-1])[None] for f in features]
            if groups and all(g.shape == groups[0].shape for g in groups):
                groups = [torch.cat(groups)]
        out: list[Caption] = []
        for g in groups:
            for i in range(0, g.shape[0], batch_size):
                out.extend(self._caption_batch(g[i:i + batch_size], gen))
        return out

    @torch.inference_mode()
    def _caption_batch(self, feats: torch.Tensor, gen: GenerationConfig) -> list[Caption]:
        prefix = self.model.prefix(feats.to(self.device))
        seqs = generate(self.model.lm, prefix, gen, eos_token_id=self.eos_token_id, decode=self.tokenizer.decode,
                        fast=self.fast)
        result = []
        for alts in seqs:
            best = alts[0]
            result.append(Caption(self.decode(best.tokens), best.tokens, best.logprobs, float(best.score),
                                  [{"text": self.decode(a.tokens), "score": float(a.score)} for a in alts[1:]]))
        return result

    def encode_images(self, images: Any, batch_size: int = 64) -> torch.Tensor:
        """Images (PIL, uint8 arrays or paths; one or a list) -> CLIP features (N, D)."""
        return self.encoder.encode_images([open_image(im) for im in _image_list(images)], batch_size=batch_size)

    def caption_images(self, images: Any, generation: GenerationConfig | None = None, *,
                       batch_size: int = 32, **overrides) -> list[Caption]:
        """Caption images (PIL, uint8 arrays or paths: one, or a list); each image is a one-frame input.
        Returns one `Caption` per image (a list of one for one image)."""
        images = _image_list(images)
        out: list[Caption] = []
        for i in range(0, len(images), batch_size):
            feats = self.encode_images(images[i:i + batch_size], batch_size)
            out.extend(self.caption_features(feats[:, None], generation, batch_size=batch_size, **overrides))
        return out

    def caption_videos(self, videos: Iterable[Sequence[Any]], generation: GenerationConfig | None = None,
                       **overrides) -> list[Caption]:
        """Caption videos given as sequences of frames: a video mapper reads all frames in order,
        an image mapper sees their mean feature."""
        feats = [self.encode_images(frames) for frames in videos]
        return self.caption_features(feats, generation, **overrides)


def _image_list(images: Any) -> list:
    """One image (a path, a PIL image, an HxW(x3) array) as a list of one; an iterable of images as a list."""
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim < 4):
        return [images]
    return list(images)


def new_captioner(name: str, *, seed: int = 0, device: str | torch.device = "auto", fast: bool | None = None,
                  **mapper_overrides):
    """An untrained captioner from config `name` (`clipprefix presets`): the tiny ones are built from local code,
    the others download their LM."""
    return Captioner.from_config(new_config(name, **mapper_overrides), device=device, seed=seed, fast=fast)
