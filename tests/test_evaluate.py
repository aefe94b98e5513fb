"""Evaluation runs: what they write, that their scores are pycocoevalcap's on the written predictions,
that the predictions are the captioner's, and the CLI (with a gallery of video frame strips)."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from clipprefix.apps import cli
from clipprefix.data import cache as C
from clipprefix.data import extract as F
from clipprefix.core.captioner import Captioner
from clipprefix.base.errors import ClipPrefixError
from clipprefix.evaluation.evaluate import evaluate, load_predictions
from clipprefix.core.captioner import new_captioner


@pytest.fixture(scope="module")
def image_setup(tmp_path_factory, synth_root, tiny_encoder):
    d = tmp_path_factory.mktemp("eval")
    F.extract("coco", synth_root / "coco", d / "coco_all", split="all", encoder=tiny_encoder, progress=False)
    return new_captioner("tiny", seed=1).save_pretrained(d / "ckpt"), d / "coco_all"


@pytest.fixture(scope="module")
def video_setup(tmp_path_factory, synth_root, tiny_encoder):
    d = tmp_path_factory.mktemp("veval")
    F.extract("msrvtt", synth_root / "msrvtt", d / "msrvtt_test", split="test", encoder=tiny_encoder,
              sampling="uniform:8", progress=False)
    return new_captioner("tiny-video", seed=1).save_pretrained(d / "ckpt"), d / "msrvtt_test"


def test_evaluate_writes_scores_predictions_and_the_settings_used(image_setup, tmp_path):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ckpt, cache_dir = image_setup
    out = tmp_path / "ev"
    res = evaluate(ckpt, cache_dir, out, split="test", strategy="beam", num_beams=3, max_new_tokens=8,
                   metrics=("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"), verbose=False)
    cache = C.FeatureCache.open(cache_dir)
    ids = [i for i in cache.ids if cache.split_of(i) == "test"]
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["split"] == "test" and meta["n_items"] == len(ids) == 4 and meta["dataset"] == "coco"
    assert meta["decoding"]["strategy"] == "beam" and meta["decoding"]["num_beams"] == 3
    assert meta["decoding"]["max_new_tokens"] == 8 and "PTBTokenizer" in meta["metric_tokenizer"]
    assert "CIDEr-D" in meta["cider"] and meta["clipscore"]["text_prefix"] == "A photo depicts "
    assert set(meta["metrics"]) == {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr", "CLIPScore", "RefCLIPScore"}
    items = load_predictions(out)
    assert [it["id"] for it in items] == ids
    assert all(it["references"] == cache.captions(it["id"]) and it["kind"] == "image" for it in items)
    # the predictions are the captioner's own, with the settings stated
    cap = Captioner.from_pretrained(ckpt)
    direct = cap.caption_features(torch.stack([cache.features(i) for i in ids]).float(), strategy="beam",
                                  num_beams=3, max_new_tokens=8)
    assert [it["prediction"] for it in items] == [c.text for c in direct]
    # and the scores are pycocoevalcap's on exactly those predictions
    tok = PTBTokenizer()
    gts = tok.tokenize({it["id"]: [{"caption": r} for r in it["references"]] for it in items})
    pred = tok.tokenize({it["id"]: [{"caption": it["prediction"]}] for it in items})
    bleu, _ = Bleu(4).compute_score(gts, pred)
    assert meta["metrics"]["BLEU-1"] == pytest.approx(bleu[0], abs=1e-12)
    assert meta["metrics"]["BLEU-4"] == pytest.approx(bleu[3], abs=1e-12)
    assert meta["metrics"]["ROUGE-L"] == pytest.approx(Rouge().compute_score(gts, pred)[0], abs=1e-12)
    assert meta["metrics"]["CIDEr"] == pytest.approx(Cider().compute_score(gts, pred)[0], abs=1e-12)
    assert 0.0 <= meta["metrics"]["CLIPScore"] <= 2.5
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["id"] for r in rows] == ids and rows[0]["references"].split(" || ") == items[0]["references"]
    assert float(rows[1]["CIDEr"]) == pytest.approx(items[1]["scores"]["CIDEr"], abs=1e-4)
    assert "| CIDEr |" in res.table() and "<table>" in res._repr_html_()


def test_split_and_model_errors(image_setup, video_setup, tmp_path):
    ckpt, cache_dir = image_setup
    vckpt, vcache = video_setup
    with pytest.raises(ClipPrefixError, match="holds split 'test'"):
        evaluate(vckpt, vcache, split="val", verbose=False)
    with pytest.raises(ClipPrefixError, match="Unknown split"):
        evaluate(ckpt, cache_dir, split="dev-2", verbose=False)
    assert cli.main(["evaluate", "--model", str(tmp_path / "nothing"), "--cache", str(cache_dir),
                     "--out", str(tmp_path / "o")]) == 2


def test_cli_evaluate_on_videos_with_a_gallery(video_setup, tmp_path):
    ckpt, cache_dir = video_setup
    out = tmp_path / "ev"
    assert cli.main(["evaluate", "--model", str(ckpt), "--cache", str(cache_dir), "--out", str(out), "--limit", "3",
                     "--max-new-tokens", "6", "--gallery"]) == 0
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["n_items"] == 3 and meta["limit"] == 3 and meta["dataset"] == "msrvtt"
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "CLIPScore", "RefCLIPScore"} <= set(meta["metrics"])
    items = load_predictions(out)
    assert all(it["kind"] == "video" and len(it["timestamps"]) == 8 for it in items)
    page = (out / "gallery.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 4 * 3          # CIDEr and CLIPScore, best and worst
    assert "src='http" not in page and "file://" not in page


def _relabel(cache_dir, dst, **encoder):
    """A copy of a cache whose index says another CLIP made it."""
    import shutil

    shutil.copytree(cache_dir, dst)
    index = json.loads((dst / "index.json").read_text())
    index["meta"]["encoder"].update(encoder)
    (dst / "index.json").write_text(json.dumps(index))
    return dst


@pytest.mark.parametrize("encoder, message", [
    ({"model": "ViT-B-32", "pretrained": "openai"}, "was made with CLIP ViT-B-32/openai"),
    ({"embed_dim": 512}, "holds 512-d features but the mapper takes 128-d"),
    ({"output": "pooled"}, "holds CLIP 'pooled' features"),
])
def test_a_cache_from_another_clip_is_refused(image_setup, tmp_path, capsys, encoder, message):
    ckpt, cache_dir = image_setup
    other = _relabel(cache_dir, tmp_path / "other", **encoder)
    with pytest.raises(ClipPrefixError, match=message):
        evaluate(ckpt, other, verbose=False)
    assert cli.main(["evaluate", "--checkpoint", str(ckpt), "--cache", str(other), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_evaluate_writes_beside_the_checkpoint_by_default(image_setup, tmp_path, monkeypatch, capsys):
    import shutil

    ckpt, cache_dir = image_setup
    mine = shutil.copytree(ckpt, tmp_path / "runs" / "best")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--checkpoint", str(mine), "--cache", str(cache_dir), "--limit", "2",
                     "--metrics", "BLEU-4", "--no-clipscore"]) == 0
    out = tmp_path / "runs" / f"best_eval_{cache_dir.name}"
    assert json.loads((out / "metrics.json").read_text())["n_items"] == 2
    assert str(out / "metrics.json") in capsys.readouterr().out


def test_a_cache_of_openai_clip_run_with_plain_gelu_is_refused(tmp_path):
    """Caches written before the encoder built OpenAI's weights with QuickGELU hold drifted features;
    they say so by lacking the "activation" entry that the encoder now records."""
    from types import SimpleNamespace

    from clipprefix.core.captioner import Captioner

    cap = SimpleNamespace(config={"clip": {"model": "ViT-B-32", "pretrained": "openai"}},
                          model=SimpleNamespace(mapper_cfg=SimpleNamespace(clip_dim=512)))
    spec = {"model": "ViT-B-32", "pretrained": "openai", "embed_dim": 512, "output": "embed"}
    old = SimpleNamespace(root=tmp_path / "old", spec=spec, embed_dim=512)
    with pytest.raises(ClipPrefixError, match="run with plain GELU, but those weights were trained with QuickGELU"):
        Captioner.check_cache(cap, old)
    Captioner.check_cache(cap, SimpleNamespace(root=tmp_path / "new", spec=dict(spec, activation="quick_gelu"),
                                               embed_dim=512))      # what the encoder writes now: accepted
    laion = {"clip": {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}}
    Captioner.check_cache(SimpleNamespace(config=laion, model=cap.model),
                          SimpleNamespace(root=tmp_path / "l", spec=dict(spec, pretrained="laion2b_s34b_b79k"),
                                          embed_dim=512))            # trained with GELU: nothing to refuse
