"""The `tiny` preset, built entirely from local code: no download, a few seconds on a CPU.

- a tiny open_clip ViT (64x64 input, 8x8 patches, 2 layers) and text tower, seeded random weights;
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

from .paths import cache_dir

TINY_VERSION = "tiny-v1"
EOS = "<|endoftext|>"

TINY_CLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
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

        torch.manual_seed(0)
        model = open_clip.CLIP(**TINY_CLIP_CONFIG)
        cfg = {"model_cfg": TINY_CLIP_CONFIG,
               "preprocess_cfg": {"size": 64, "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                  "std": list(open_clip.OPENAI_DATASET_STD),
                                  "interpolation": "bicubic", "resize_mode": "shortest"}}
        (d / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    return _build_once("clip", build)


def tiny_tokenizer_dir() -> Path:
    """A transformers tokenizer folder: byte-level BPE trained on the synthetic captions."""
    def build(d: Path):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        from .synthetic import all_captions

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
