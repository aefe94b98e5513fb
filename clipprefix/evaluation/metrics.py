"""Caption metrics as the field computes them, and CLIPScore / RefCLIPScore.

    from clipprefix.evaluation.metrics import caption_metrics, clip_scores
    m = caption_metrics({"img1": "a dog runs"}, {"img1": ["a dog is running", "a brown dog runs"]})
    m.scores        # {"BLEU-1": .., "BLEU-4": .., "METEOR": .., "ROUGE-L": .., "CIDEr": ..}, pycocoevalcap's scale (0-1, CIDEr 0-10)
    m.per_item      # {"img1": {"BLEU-4": .., "CIDEr": .., ...}}
    c = clip_scores(captioner.encoder, image_features, ["a dog runs"], [["a dog is running"]])

- BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D and SPICE come from `pycocoevalcap` after its PTB tokenizer
  (Stanford CoreNLP 3.4.1: lower-cased, punctuation removed), exactly as the COCO caption server
  computes them; Java is needed. CIDEr-D's document frequencies come from the references scored, so
  scores on a subset are not comparable with scores on a whole split. Papers print these x 100.
- SPICE needs Stanford CoreNLP 3.6.0, which pycocoevalcap downloads on first use: by default it runs
  only when that is already installed, otherwise it is skipped with one line in `notes`.
- CLIPScore (Hessel et al. 2021): CLIP-S = w * max(cos(image, text("A photo depicts " + caption)), 0)
  with w = 2.5; RefCLIP-S = harmonic mean of CLIP-S and max(max over references of cos(caption, ref), 0),
  references embedded with the same prefix. Computed with the captioner's own CLIP; a video is
  represented by the mean of its frames' normalised embeddings.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..base.errors import ClipPrefixError

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
CLIP_PREFIX = "A photo depicts "
CLIP_W = 2.5


@dataclass
class MetricResult:
    scores: dict[str, float]                       # corpus-level, pycocoevalcap's scale
    per_item: dict[str, dict[str, float]]          # item id -> metric -> score
    notes: list[str] = field(default_factory=list)  # e.g. why SPICE was skipped


@contextlib.contextmanager
def _quiet():
    """Silence pycocoevalcap's prints and the Java tokenizer's stderr line (file descriptors 1 and 2)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _check_java() -> None:
    if shutil.which("java") is None:
        raise ClipPrefixError("Caption metrics need Java (pycocoevalcap runs the Stanford tokenizer and METEOR "
                              "in it); install a JRE, e.g. `apt-get install default-jre` or `conda install openjdk`.")


def _pycoco():
    """pycocoevalcap's modules (the `eval` extra: an optional dependency, imported where it is used)."""
    try:
        import pycocoevalcap.bleu.bleu   # optional: the eval extra
        import pycocoevalcap.cider.cider   # optional: the eval extra
        import pycocoevalcap.meteor.meteor   # optional: the eval extra
        import pycocoevalcap.rouge.rouge   # optional: the eval extra
        import pycocoevalcap.spice.get_stanford_models   # optional: the eval extra
        import pycocoevalcap.spice.spice   # optional: the eval extra
        import pycocoevalcap.tokenizer.ptbtokenizer   # optional: the eval extra
    except ImportError as e:
        raise ClipPrefixError("Caption metrics need pycocoevalcap, which the `eval` extra installs: "
                              "pip install 'clipprefix[eval]'.") from e
    return pycocoevalcap


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's PTB tokenisation of {id: [caption, ...]} (one Java call for everything)."""
    coco = _pycoco()
    _check_java()
    with _quiet():
        out = coco.tokenizer.ptbtokenizer.PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: out.get(k, [""] * len(v)) for k, v in captions.items()}


def spice_available() -> tuple[bool, str]:
    """Whether SPICE can run here without a download, and if not, why (one sentence)."""
    lib = Path(_pycoco().spice.get_stanford_models.__file__).parent / "lib"
    jar = lib / "stanford-corenlp-3.6.0.jar"
    if jar.is_file() and (lib / "stanford-corenlp-3.6.0-models.jar").is_file():
        return True, ""
    return False, (f"SPICE skipped: it needs Stanford CoreNLP 3.6.0 in {lib}, which pycocoevalcap downloads on "
                   "first use (run once with spice=True / --spice while online)")


def caption_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                    metrics: Sequence[str] = METRICS, spice: bool | None = None) -> MetricResult:
    """Score `predictions` {id: caption} against `references` {id: [captions]} with pycocoevalcap.

    `metrics` picks among BLEU-1..4, METEOR, ROUGE-L, CIDEr; `spice`: None runs SPICE only when it needs
    no download, True tries it (a failure is a note, not an error), False skips it silently.
    """
    ids = list(predictions)
    if not ids:
        raise ClipPrefixError("There are no predictions to score.")
    missing = [i for i in ids if not references.get(i)]
    if missing:
        raise ClipPrefixError(f"{len(missing)} predictions have no references (first: {missing[0]!r}).")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ClipPrefixError(f"Unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}.")
    coco = _pycoco()
    keys = {i: f"r{n}" for n, i in enumerate(ids)}     # plain string keys for the Java side and the scorers
    tok = ptb_tokenize({**{f"g{keys[i]}": list(references[i]) for i in ids},
                        **{f"p{keys[i]}": [predictions[i]] for i in ids}})
    gts = {keys[i]: tok[f"g{keys[i]}"] for i in ids}
    res = {keys[i]: tok[f"p{keys[i]}"][:1] for i in ids}
    scores: dict[str, float] = {}
    per: dict[str, dict[str, float]] = {i: {} for i in ids}

    def put(name: str, corpus, items) -> None:
        scores[name] = float(corpus)
        for i, v in zip(ids, items):
            per[i][name] = float(v)

    bleu_n = [int(m[-1]) for m in metrics if m.startswith("BLEU")]
    if bleu_n:
        with _quiet():
            corpus, items = coco.bleu.bleu.Bleu(4).compute_score(gts, res)
        for n in sorted(bleu_n):
            put(f"BLEU-{n}", corpus[n - 1], items[n - 1])
    if "METEOR" in metrics:
        scorer = coco.meteor.meteor.Meteor()
        try:
            corpus, items = scorer.compute_score(gts, res)
        finally:
            del scorer          # its __del__ ends the Java process
        put("METEOR", corpus, items)
    if "ROUGE-L" in metrics:
        corpus, items = coco.rouge.rouge.Rouge().compute_score(gts, res)
        put("ROUGE-L", corpus, items)
    if "CIDEr" in metrics:
        corpus, items = coco.cider.cider.Cider().compute_score(gts, res)
        put("CIDEr", corpus, items)
    notes: list[str] = []
    if spice is not False:
        ok, why = spice_available()
        if ok or spice:
            try:
                with _quiet():
                    corpus, items = coco.spice.spice.Spice().compute_score(gts, res)
                put("SPICE", corpus, [it["All"]["f"] for it in items])
            except (OSError, ValueError, KeyError, RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"SPICE skipped: it failed to run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        else:
            notes.append(why)
    return MetricResult(scores, per, notes)


# ---------------------------------------------------------------------- CLIPScore
def _image_embeddings(features: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, D) / (N, T, D) / list of (T, D) CLIP image embeddings -> (N, D) unit vectors (frames averaged)."""
    norm = torch.nn.functional.normalize
    if isinstance(features, torch.Tensor):
        f = features.float()
        return norm(norm(f[:, None] if f.dim() == 2 else f, dim=-1).mean(1), dim=-1)
    rows = [torch.as_tensor(f).float().reshape(-1, torch.as_tensor(f).shape[-1]) for f in features]
    return norm(torch.stack([norm(r, dim=-1).mean(0) for r in rows]), dim=-1)


def _text_embeddings(encoder, texts: Sequence[str], batch_size: int) -> torch.Tensor:
    chunks = [encoder.encode_text([CLIP_PREFIX + t for t in texts[i:i + batch_size]]).float().cpu()
              for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, encoder.embed_dim)


def clip_scores(encoder, image_features, candidates: Sequence[str], references: Sequence[Sequence[str]] | None = None,
                *, w: float = CLIP_W, batch_size: int = 256) -> dict:
    """CLIP-S (and RefCLIP-S when `references` are given) per candidate and their means.

    `encoder` is the `ClipEncoder` that made `image_features` (its `encode_image` output, T frames per
    item allowed); returns {"CLIPScore": mean, "RefCLIPScore": mean, "per_item": {"CLIPScore": [...], ...}}.
    """
    img = _image_embeddings(image_features)
    if len(img) != len(candidates):
        raise ClipPrefixError(f"CLIPScore got {len(img)} images but {len(candidates)} captions.")
    cand = _text_embeddings(encoder, list(candidates), batch_size)
    clip_s = w * (img * cand).sum(-1).clamp(min=0)
    out = {"CLIPScore": float(clip_s.mean()), "per_item": {"CLIPScore": clip_s.tolist()}}
    if references is not None:
        flat = [r for refs in references for r in refs]
        ref = _text_embeddings(encoder, flat, batch_size)
        best, start = [], 0
        for refs in references:
            sims = ref[start:start + len(refs)] @ cand[len(best)]
            best.append(float(sims.max()) if len(refs) else 0.0)
            start += len(refs)
        r = torch.tensor(best).clamp(min=0)
        denom = clip_s + r
        ref_s = torch.where(denom > 0, 2 * clip_s * r / denom.clamp(min=1e-12), torch.zeros_like(denom))
        out["RefCLIPScore"] = float(ref_s.mean())
        out["per_item"]["RefCLIPScore"] = ref_s.tolist()
    return out
