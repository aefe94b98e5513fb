"""The `tiny` preset, built entirely from local code: no download, a few seconds on a CPU.

- a tiny open_clip ViT (64x64 input, 16x16 patches, 2 layers) and text tower, trained contrastively
  for ~700 steps (under a minute on 2 CPU cores) on freshly drawn synthetic images and their
  canonical captions: random weights keep colour but lose shape and position, so a captioner could not
  learn what the captions describe;
- a tiny GPT-2 (2 layers, 128 wide);
- a byte-level BPE tokenizer trained on every caption the synthetic data generator can write.

Each part is built once and cached under `paths.cache_dir()/tiny-v1/` (build in a temporary folder,
then rename, so concurrent first uses never see half a folder). Tests, CI, the smoke notebooks and the
demo use it; its untrained captions are noise until `clipprefix train` (or the demo) trains a mapper.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..base.paths import cache_dir

TINY_VERSION = "tiny-v2"
EOS = "<|endoftext|>"

TINY_CLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
TINY_GPT2 = {"n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 64}


def _build_once(name: str, builder) -> Path:
    target = cache_dir() / TINY_VERSION / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        builder(tmp)
        try:
            os.rename(tmp, target)
        except OSError:   # another process won the race; its folder is as good as ours
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def tiny_clip_dir() -> Path:
    """An open_clip `local-dir:` folder (open_clip_config.json + open_clip_model.safetensors)."""
    def build(d: Path):
        import open_clip
        from safetensors.torch import save_file

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
    import math

    import numpy as np
    import open_clip
    from PIL import Image

    from . import layouts as synthetic

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")   # bundled BPE vocabulary, no download
    text = tokenizer([s.caption() for s in synthetic.STILLS], context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    warmup = steps // 20
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    target = torch.arange(len(synthetic.STILLS))
    model.train()
    for _ in range(steps):
        # drawn at the datasets' 96x96 and resized as ClipEncoder.preprocess does (bicubic)
        pixels = np.stack([np.asarray(Image.fromarray(synthetic.draw_still(s, rng)).resize((size, size), Image.BICUBIC))
                           for s in synthetic.STILLS])
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
        img, txt, scale = model(x, text)[:3]
        logits = scale * img @ txt.T
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def tiny_tokenizer_dir() -> Path:
    """A transformers tokenizer folder: byte-level BPE trained on the synthetic captions."""
    def build(d: Path):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        from .layouts import all_captions

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


def tiny_lm(vocab_size: int, eos_token_id: int, seed: int = 0):
    """A freshly initialised tiny GPT-2 (seeded)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                     pad_token_id=eos_token_id, **TINY_GPT2)
    return GPT2LMHeadModel(cfg)
