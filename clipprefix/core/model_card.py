"""The model card (README.md) a captioner carries to the Hugging Face Hub: what it is, what it was trained
on, how it decodes by default and how well it scored, when that is known.

    model_card(config, "me/my-captioner", metrics=eval_result)     # Markdown with YAML front matter

Everything comes from the checkpoint's config.json (its `training` entry is written by the trainer and
the tiny kit) and from an evaluation's metrics.json; nothing is guessed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..base.errors import ClipPrefixError

# what a checkpoint's `training` entry may say (the trainer: training/pairs.py and trainer.py; the tiny kit),
# its `train_config` filling in the run's settings
_TRAINING_KEYS = ("data", "dataset", "split", "cache", "val_cache", "sampling", "n_frames", "epochs", "epochs_done",
                  "steps", "global_step", "batch_size", "lr", "train_lm", "seed", "best_val_loss", "recipe")


def _metrics(metrics) -> tuple[dict, dict]:
    """(scores, what they mean) from an EvalResult, a metrics.json path (or its folder), or a dict."""
    if metrics is None:
        return {}, {}
    if hasattr(metrics, "metrics"):
        return dict(metrics.metrics), dict(getattr(metrics, "info", {}) or {})
    if isinstance(metrics, (str, os.PathLike)):
        p = Path(metrics)
        p = p / "metrics.json" if p.is_dir() else p
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ClipPrefixError(f"{p} cannot be read as an evaluation's metrics.json ({e}).") from e
        return dict(data.get("metrics", {})), {k: v for k, v in data.items() if k != "metrics"}
    return dict(metrics), {}


def model_card(config: dict, repo_id: str, metrics=None) -> str:
    """README.md for the Hub: YAML front matter (library, task, tags, license, datasets when known), then the
    model's parts, its training data, its decoding defaults, its scores (x 100, as papers print them) and
    how to use it."""
    clip, mapper, lm = config.get("clip", {}), config.get("mapper", {}), config.get("lm", {})
    training = config.get("training", {}) or {}
    scores, info = _metrics(metrics)
    dataset = training.get("dataset") or info.get("dataset")
    front = ["---", "library_name: clipprefix", "pipeline_tag: image-to-text", "license: mit",
             "tags:", "- image-captioning", "- video-captioning" if mapper.get("type") == "video" else "- clip-prefix",
             "- clip", "- gpt2"]
    if dataset:
        front += ["datasets:", f"- {dataset}"]
    front.append("---")
    clip_name = clip.get("spec_name") or clip.get("model") or "a CLIP tower stored in this repository (clip/)"
    tag = f" ({clip['pretrained']})" if clip.get("pretrained") else ""
    lm_name = lm.get("name") or "a language model stored in this repository (lm/)"
    parts = [f"# {repo_id.split('/')[-1]}", "",
             "A CLIP-prefix captioner made with [clipprefix](https://pypi.org/project/clipprefix/): CLIP features "
             "of an image (or of a video's frames) are mapped to a prefix of language-model embeddings, and the "
             "language model writes the caption.", "",
             "| part | what |", "|---|---|",
             f"| CLIP | {clip_name}{tag}, {clip.get('output', 'embed')} features |",
             f"| mapper | {mapper.get('type', '?')}, prefix of {mapper.get('prefix_length', '?')} embeddings "
             f"from {mapper.get('clip_dim', '?')}-d features |",
             f"| language model | {lm_name}, {'fine-tuned' if lm.get('trainable') else 'frozen'} |"]
    if config.get("frames"):
        parts.append(f"| frames | {config['frames'].get('policy')} sampling, {config['frames'].get('n')} per video |")
    parts += ["", "## Training data", ""]
    run = training.get("train_config", {}) or {}
    known = {k: training.get(k, run.get(k)) for k in _TRAINING_KEYS if training.get(k, run.get(k)) is not None}
    parts += [f"- {k}: {v}" for k, v in known.items()] or ["Not recorded in this checkpoint."]
    gen = config.get("generation", {})
    if gen:
        shown = {k: gen[k] for k in ("strategy", "num_beams", "max_new_tokens", "temperature", "top_p")
                 if k in gen and not (k == "num_beams" and gen.get("strategy") != "beam")
                 and not (k in ("temperature", "top_p") and gen.get("strategy") != "sample")}
        parts += ["", "## Decoding defaults", "", ", ".join(f"{k}={v}" for k, v in shown.items())]
    if scores:
        where = ", ".join(f"{k} {info[k]}" for k in ("dataset", "split", "n_items") if info.get(k) is not None)
        parts += ["", "## Evaluation", "", f"Scores x 100{f' ({where})' if where else ''}:", "",
                  "| " + " | ".join(scores) + " |", "|" + "---|" * len(scores),
                  "| " + " | ".join(f"{v * 100:.2f}" for v in scores.values()) + " |"]
    parts += ["", "## Use", "", "```python", "from clipprefix import Captioner", "",
              f'cap = Captioner.from_pretrained("{repo_id}")', 'print(cap.caption_images("photo.jpg")[0].text)', "```", ""]
    return "\n".join(front + [""] + parts)
