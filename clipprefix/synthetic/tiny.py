"""The `tiny` preset, built entirely from local code: no download, a few minutes on one CPU core, once.

- a tiny open_clip ViT (64x64 input, 16x16 patches, 2 layers) and text tower, trained contrastively
  for 500 steps on freshly drawn synthetic images and their canonical captions: random weights keep
  colour but lose shape and position, so a captioner could not learn what the captions describe
  (a captioner on it names colour, shape, position and count of fresh drawings right 96% of the time
  against 99% after 700 steps and 78% after 300; 500 steps take 30% less time than 700);
- a tiny GPT-2 (2 layers, 128 wide);
- a byte-level BPE tokenizer trained on every caption the synthetic data generator can write;
- `tiny-trained`: the tiny image captioner trained briefly on drawings of every synthetic still scene,
  so that smoke mode (notebooks, explorer) shows captions that say what is drawn.

Each part is built once and cached under `paths.cache_dir()/<VERSION>/` (presets under `presets/`),
built in a temporary folder and renamed, under a file lock so that concurrent first uses wait for one
build. A build shows a progress bar and keeps its partial work (tiny_build.py): interrupted, the next
use goes on from its last saved step. Tests, CI, the smoke notebooks and the demo use it; the untrained
`tiny` preset's captions are noise until `clipprefix train` (or the demo) trains a mapper.
This module is the `tiny` local kit of `core/registry.py`: `VERSION`, `clip_dir`, `tokenizer_dir`,
`new_lm`, `build_checkpoint`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from ..base.files import write_folder
from ..base.paths import cache_dir
from ..core.captioner import new_captioner
from ..core.model import encode_captions
from .draw import draw_still
from .scenes import STILLS, all_captions
from .tiny_build import finish, train_steps

VERSION = "tiny-v3"      # change it whenever a builder's recipe changes: caches are keyed by it
EOS = "<|endoftext|>"

TINY_CLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
TINY_GPT2 = {"n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 64}


def _build_once(name: str, builder) -> Path:
    return write_folder(cache_dir() / VERSION / name, builder, replace=False)


def clip_dir() -> Path:
    """An open_clip `local-dir:` folder (open_clip_config.json + open_clip_model.safetensors)."""
    home = cache_dir() / VERSION
    partial = home / ".clip.partial"

    def build(d: Path):
        model = pretrain_tiny_clip(partial=partial, desc=f"building the tiny CLIP once (cached in {home})")
        cfg = {"model_cfg": TINY_CLIP_CONFIG,
               "preprocess_cfg": {"size": 64, "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                  "std": list(open_clip.OPENAI_DATASET_STD),
                                  "interpolation": "bicubic", "resize_mode": "shortest"}}
        (d / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    out = _build_once("clip", build)
    finish(partial)
    return out


def pretrain_tiny_clip(steps: int = 500, seed: int = 0, *, partial: Path | None = None, every: int = 50,
                       desc: str = "building the tiny CLIP", progress: bool = True):
    """The tiny CLIP, trained with the symmetric InfoNCE loss on batches holding each synthetic still
    scene once (no false negatives), each drawn afresh at every step (no memorised renderings);
    `partial` keeps the work of an interrupted build (tiny_build.py)."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")   # bundled BPE vocabulary, no download
    text = tokenizer([s.caption() for s in STILLS], context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    target = torch.arange(len(STILLS))

    def step_loss(rng: np.random.Generator) -> torch.Tensor:
        # drawn at the datasets' 96x96 and resized as ClipEncoder.preprocess does (bicubic)
        pixels = np.stack([np.asarray(Image.fromarray(draw_still(s, rng)).resize((size, size), Image.BICUBIC))
                           for s in STILLS])
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
        img, txt, scale = model(x, text)[:3]
        logits = scale * img @ txt.T
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    return train_steps(model, step_loss, steps=steps, lr=2e-3, weight_decay=0.05, seed=seed, partial=partial,
                       every=every, desc=desc, progress=progress)


def tokenizer_dir() -> Path:
    """A transformers tokenizer folder: byte-level BPE trained on the synthetic captions."""
    def build(d: Path):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=[EOS], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(sorted(set(all_captions())), trainer=trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                       pad_token=EOS)
        fast.save_pretrained(str(d))
    return _build_once("tokenizer", build)


def new_lm(vocab_size: int, eos_token_id: int, seed: int = 0):
    """A freshly initialised tiny GPT-2 (seeded)."""
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                     pad_token_id=eos_token_id, **TINY_GPT2)
    return GPT2LMHeadModel(cfg)


def build_checkpoint(config_name: str, target: Path, *, trained: bool = False) -> None:
    """The checkpoint folder of config `config_name` ('tiny' or 'tiny-video') at `target`: untrained, or
    `trained` briefly on the synthetic scenes (`train_tiny_captioner`)."""
    if not trained:
        new_captioner(config_name).save_pretrained(target)
        return
    partial = target.parent / f".{target.name}.partial"
    cap = train_tiny_captioner(config_name, partial=partial,
                               desc=f"training the tiny captioner once (cached in {target.parent})")
    cap.save_pretrained(target)
    finish(partial)


RENDERINGS = 4        # drawings of each still scene to train on (the demo's 384 images)
CAPTIONER_STEPS = 480  # batches of 40 (item, caption) pairs: 10 passes over 384 images x 5 captions


def train_tiny_captioner(config_name: str = "tiny", *, steps: int = CAPTIONER_STEPS, batch: int = 40, seed: int = 0,
                         partial: Path | None = None, every: int = 100, desc: str = "training the tiny captioner",
                         progress: bool = True):
    """A tiny image captioner (mapper and LM) trained on `RENDERINGS` fresh drawings of every still scene with
    their five captions, as the demo trains it: it names colour, shape, position and count of new drawings."""
    cap = new_captioner(config_name, seed=seed)
    if cap.is_video:
        raise ValueError("train_tiny_captioner trains image captioners (one frame per item)")
    rng = np.random.default_rng([seed, 7])
    scenes = [s for s in STILLS for _ in range(RENDERINGS)]
    feats = cap.encode_images([draw_still(s, rng) for s in scenes]).clone()[:, None]   # (N, 1, D), encoded once
    captions = [s.captions(rng) for s in scenes]
    pairs = [(i, c) for i, caps in enumerate(captions) for c in caps]
    cap.model.set_train_lm(True)          # the tiny recipe fine-tunes the LM (configs/tiny.json)
    tokenizer = cap.tokenizer

    def step_loss(r: np.random.Generator) -> torch.Tensor:
        pick = [pairs[k] for k in r.integers(0, len(pairs), size=batch)]
        ids, mask = encode_captions(tokenizer, [c for _, c in pick])
        return cap.model(feats[[i for i, _ in pick]], ids, mask)

    train_steps(cap.model, step_loss, steps=steps, lr=1e-3, weight_decay=0.01, seed=seed, partial=partial,
                every=every, desc=desc, progress=progress)
    cap.config["lm"]["trainable"] = True
    cap.config["training"] = {"data": f"synthetic stills: {len(STILLS)} scenes x {RENDERINGS} drawings, "
                                      f"{len(pairs)} captions", "steps": steps, "batch_size": batch, "lr": 1e-3,
                              "seed": seed, "recipe": f"clipprefix.synthetic.tiny {VERSION}"}
    return cap
