"""The `tiny` preset, built entirely from local code: no download, a few seconds on a CPU.

- a tiny open_clip ViT (64x64 input, 16x16 patches, 2 layers) and text tower, trained contrastively
  for ~700 steps (under a minute on 2 CPU cores) on freshly drawn synthetic images and their
  canonical captions: random weights keep colour but lose shape and position, so a captioner could not
  learn what the captions describe;
- a tiny GPT-2 (2 layers, 128 wide);
- a byte-level BPE tokenizer trained on every caption the synthetic data generator can write.

Each part is built once and cached under `paths.cache_dir()/<VERSION>/` (built in a temporary folder,
then renamed, so concurrent first uses never see half a folder). Tests, CI, the smoke notebooks and the
demo use it; its untrained captions are noise until `clipprefix train` (or the demo) trains a mapper.
This module is the `tiny` local kit of `core/registry.py`: `VERSION`, `clip_dir`, `tokenizer_dir`,
`new_lm`, `build_checkpoint`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from ..base.files import write_folder
from ..base.paths import cache_dir
from ..core.captioner import new_captioner
from .draw import draw_still
from .scenes import STILLS, all_captions

VERSION = "tiny-v2"
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
    def build(d: Path):
        model = pretrain_tiny_clip()
        cfg = {"model_cfg": TINY_CLIP_CONFIG,
               "preprocess_cfg": {"size": 64, "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                  "std": list(open_clip.OPENAI_DATASET_STD),
                                  "interpolation": "bicubic", "resize_mode": "shortest"}}
        (d / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    return _build_once("clip", build)


def pretrain_tiny_clip(steps: int = 700, seed: int = 0):
    """The tiny CLIP, trained with the symmetric InfoNCE loss on batches holding each synthetic still
    scene once (no false negatives), each drawn afresh at every step (no memorised renderings)."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")   # bundled BPE vocabulary, no download
    text = tokenizer([s.caption() for s in STILLS], context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    warmup = steps // 20
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    target = torch.arange(len(STILLS))
    model.train()
    for _ in range(steps):
        # drawn at the datasets' 96x96 and resized as ClipEncoder.preprocess does (bicubic)
        pixels = np.stack([np.asarray(Image.fromarray(draw_still(s, rng)).resize((size, size), Image.BICUBIC))
                           for s in STILLS])
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
        img, txt, scale = model(x, text)[:3]
        logits = scale * img @ txt.T
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


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


def build_checkpoint(config_name: str, target: Path) -> None:
    """The untrained checkpoint folder of preset `config_name` ('tiny' or 'tiny-video') at `target`."""
    new_captioner(config_name).save_pretrained(target)
