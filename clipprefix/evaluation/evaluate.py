"""Evaluation runs: caption a cached split, score it the way papers do, write everything down.

    from clipprefix.evaluation.evaluate import evaluate
    res = evaluate("runs/x/best", "data/processed/features/msrvtt_test_ViT-B-32_uniform-16", "runs/x/eval-test")
    res.metrics                     # {"BLEU-4": .., "METEOR": .., "ROUGE-L": .., "CIDEr": .., "CLIPScore": .., ...}
    res                             # renders as a table in Jupyter

    clipprefix evaluate --checkpoint runs/x/best --cache DIR [--split test] [--out DIR] [--strategy beam --num-beams 5] [--gallery]

Writes to `out`: `metrics.json` (scores plus what they mean: split, number of items, checkpoint,
decoding settings, the metric tokenizer, CIDEr-D's document-frequency source, the CLIP used for
CLIPScore, notes such as a skipped SPICE), `predictions.jsonl` and `predictions.csv` (per item: the
prediction, its references, per-item scores, the source file). Scores are pycocoevalcap's (0-1;
CIDEr 0-10); tables print them x 100 as papers do.
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text
from ..core.captioner import Captioner
from ..data.cache import FeatureCache, stack_frames
from ..data.datasets import Item, split_name
from .metrics import CLIP_PREFIX, CLIP_W, METRICS, caption_metrics, clip_scores

METRIC_TOKENIZER = ("pycocoevalcap PTBTokenizer (Stanford CoreNLP 3.4.1 PTBTokenizer, -lowerCase, "
                    "punctuation tokens removed)")


@dataclass
class EvalResult:
    metrics: dict[str, float]
    items: list[dict]                   # {"id", "prediction", "references", "scores", "path", "kind"}
    info: dict                          # everything metrics.json states besides the scores
    out: Path | None = None
    notes: list[str] = field(default_factory=list)

    def table(self, scale: float = 100.0) -> str:
        """The scores as a one-row Markdown table (x 100, as papers print them)."""
        names = list(self.metrics)
        return ("| " + " | ".join(names) + " |\n|" + "---|" * len(names) + "\n| "
                + " | ".join(f"{self.metrics[n] * scale:.2f}" for n in names) + " |")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(n)}</th>" for n in self.metrics)
        row = "".join(f"<td>{v * 100:.2f}</td>" for v in self.metrics.values())
        cap = html.escape(f"{self.info.get('dataset')}/{self.info.get('split')}, {len(self.items)} items, "
                          f"{self.info.get('decoding', {}).get('strategy')} decoding (scores x 100)")
        notes = "".join(f"<br><small>{html.escape(n)}</small>" for n in self.notes)
        return f"<table><caption>{cap}</caption><tr>{head}</tr><tr>{row}</tr></table>{notes}"


@dataclass
class MetricsTable:
    """Scores of several evaluations side by side (x 100); renders in Jupyter, prints as Markdown."""
    results: dict[str, EvalResult]

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        names = list(dict.fromkeys(m for r in self.results.values() for m in r.metrics))
        return names, [[label] + [f"{r.metrics[n] * 100:.2f}" if n in r.metrics else "-" for n in names]
                       for label, r in self.results.items()]

    def __str__(self) -> str:
        names, rows = self._rows()
        return "\n".join(["| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
                         + ["| " + " | ".join(r) + " |" for r in rows])

    def _repr_html_(self) -> str:
        names, rows = self._rows()
        head = "".join(f"<th>{html.escape(n)}</th>" for n in ["run", *names])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table><small>scores x 100 (pycocoevalcap; CLIPScore w = 2.5)</small>"


def metrics_table(results: dict[str, EvalResult]) -> MetricsTable:
    """A table of several evaluations, e.g. {"greedy": res1, "beam 5": res2}."""
    return MetricsTable(dict(results))


def _item_ids(cache, split: str | None, limit: int | None) -> list[str]:
    ids = list(cache.ids)
    if split is not None and cache.meta.get("split") == "all":
        want = split_name(split)
        ids = [i for i in ids if want == "all" or cache.split_of(i) == want]
    elif split is not None and split_name(split) not in ("all", cache.meta.get("split")):
        raise ClipPrefixError(f"Feature cache {cache.root} holds split '{cache.meta.get('split')}', not '{split}'.")
    if not ids:
        raise ClipPrefixError(f"Feature cache {cache.root} has no items of split '{split}'.")
    return ids[:limit] if limit else ids


def _same_clip(cache_spec: dict, encoder_spec: dict) -> bool:
    keys = ("model", "pretrained", "output", "embed_dim", "preprocess")
    return all(cache_spec.get(k) == encoder_spec.get(k) for k in keys)


def evaluate(model, cache, out: str | os.PathLike | None = None, *, split: str | None = None,
             generation=None, batch_size: int = 64, limit: int | None = None, clipscore: bool = True,
             spice: bool | None = None, metrics=None, device: str | None = "auto", verbose: bool = True,
             **decoding) -> EvalResult:
    """Caption the items of a feature cache with `model` (a `Captioner` or a checkpoint) and score them.

    `split` picks items from a cache made with split 'all'; `generation` / `**decoding` (strategy=,
    num_beams=, max_new_tokens=, ...) override the checkpoint's decoding settings; `limit` scores the
    first N items only (a smoke run: CIDEr-D on a subset is not comparable to a whole split); `metrics`
    picks among `metrics.METRICS` (default: all); `device` places a checkpoint loaded here ("auto": the first
    GPU when there is one).
    """
    t0 = time.time()
    cap = model if isinstance(model, Captioner) else Captioner.from_pretrained(model, device=device or "auto")
    cache = cache if isinstance(cache, FeatureCache) else FeatureCache.open(cache)
    cap.check_cache(cache)
    ids = _item_ids(cache, split, limit)
    gen = (generation or cap.generation).updated(**decoding)
    gen.validate()
    feats = [cache.features(i) for i in ids]
    n_frames = cap.config.get("training", {}).get("n_frames") if cap.is_video else None
    if cap.is_video and n_frames is None:
        n_frames = min(cap.model.mapper_cfg.max_frames, max(f.shape[0] for f in feats))
    inputs = stack_frames(feats, n_frames) if n_frames else feats
    captions = cap.caption_features(inputs if isinstance(inputs, list) else inputs.float(), gen, batch_size=batch_size)
    preds = {i: c.text for i, c in zip(ids, captions)}
    refs = {i: cache.captions(i) for i in ids}
    if verbose:
        print(f"captioned {len(ids)} items in {time.time() - t0:.1f} s; scoring ...", flush=True)
    scored = caption_metrics(preds, refs, spice=spice, metrics=metrics or METRICS)
    metrics = dict(scored.scores)
    per = scored.per_item
    notes = list(scored.notes)
    clip_info = None
    if clipscore:
        spec = cache.spec
        if spec.get("output", "embed") != "embed":
            notes.append("CLIPScore skipped: the cache holds CLIP features before the projection, "
                         "which cannot be compared with text embeddings")
        elif cap.encoder.tokenizer is None:
            notes.append(f"CLIPScore skipped: the CLIP model {cap.encoder.spec.get('model')} has no text tower "
                         "tokenizer, so it cannot embed captions")
        elif not _same_clip(spec, cap.encoder.spec):
            notes.append(f"CLIPScore skipped: the cache was made with CLIP {spec.get('model')}/{spec.get('pretrained')}, "
                         f"not this captioner's {cap.encoder.spec.get('model')}/{cap.encoder.spec.get('pretrained')}")
        else:
            cs = clip_scores(cap.encoder, feats, [preds[i] for i in ids], [refs[i] for i in ids])
            for name in ("CLIPScore", "RefCLIPScore"):
                metrics[name] = cs[name]
                for i, v in zip(ids, cs["per_item"][name]):
                    per[i][name] = v
            clip_info = {"model": spec.get("model"), "pretrained": spec.get("pretrained"), "w": CLIP_W,
                         "text_prefix": CLIP_PREFIX, "video": "mean of the frames' normalised embeddings"}
    for n in notes:
        print(n, flush=True)
    items = [{"id": i, "prediction": preds[i], "references": refs[i], "scores": per[i], "path": cache.source(i),
              "kind": Item(i, Path(cache.source(i))).kind, "timestamps": cache.timestamps(i).tolist()} for i in ids]
    info = {"checkpoint": str(cap.folder) if cap.folder else None, "cache": str(cache.root),
            "dataset": cache.meta.get("dataset"), "split": split or cache.meta.get("split"), "n_items": len(ids),
            "limit": limit, "decoding": gen.to_dict(), "metric_tokenizer": METRIC_TOKENIZER,
            "lm_tokenizer": getattr(cap.tokenizer, "name_or_path", None) or cap.config.get("tokenizer"),
            "cider": "CIDEr-D (pycocoevalcap Cider: sigma 6, clipped n-gram counts); document frequencies from the "
                     "references scored here",
            "scale": "pycocoevalcap's: 0-1 (CIDEr 0-10); papers print x 100",
            "clipscore": clip_info, "encoder": cache.spec, "seconds": time.time() - t0}
    res = EvalResult(metrics, items, info, Path(out) if out else None, notes)
    if out is not None:
        write_outputs(res, Path(out))
    return res


def write_outputs(res: EvalResult, out: Path) -> None:
    """metrics.json, predictions.jsonl and predictions.csv in `out` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps({"metrics": res.metrics, **res.info, "notes": res.notes},
                                                       indent=1))
    atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(it) + "\n" for it in res.items))
    names = list(res.metrics)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "prediction", "references", *names, "path"])
    for it in res.items:
        w.writerow([it["id"], it["prediction"], " || ".join(it["references"]),
                    *[f"{it['scores'].get(n, float('nan')):.4f}" for n in names], it["path"] or ""])
    atomic_write_text(out / "predictions.csv", buf.getvalue())


def load_predictions(folder: str | os.PathLike) -> list[dict]:
    """The per-item records an evaluation wrote (`predictions.jsonl`)."""
    p = Path(folder) / "predictions.jsonl"
    if not p.is_file():
        raise ClipPrefixError(f"{folder} holds no predictions.jsonl; run `clipprefix evaluate --out {folder}` first.")
    with open(p, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def default_out(model: str | os.PathLike, cache: str | os.PathLike) -> Path:
    """Where `clipprefix evaluate` writes when no --out is given: beside the checkpoint, named by the cache."""
    name = f"_eval_{Path(cache).resolve().name}"
    m = Path(model)
    if m.is_dir():
        return m.resolve().with_name(m.resolve().name + name)
    return Path("runs") / "eval" / (str(model).replace("/", "--") + name)
