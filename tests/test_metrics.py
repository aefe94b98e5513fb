"""Caption metrics equal pycocoevalcap called directly; CLIPScore / RefCLIPScore equal a hand computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clipprefix.evaluation import metrics as M
from clipprefix import synthetic
from clipprefix.base.errors import ClipPrefixError

REFS = {
    "img1": ["A red circle on the left.", "there is a red circle on the left", "one red circle on the left side"],
    7: ["Two blue squares at the top!", "a picture of two blue squares at the top"],
    "v3": ["a green triangle moves from left to right", "a green triangle slides to the right"],
    "x": ["a yellow square at the bottom", "a grey background with a yellow square at the bottom"],
}
PREDS = {"img1": "A red circle, on the left.", 7: "two blue squares at the bottom", "v3": "", "x": "a yellow square"}


def test_scores_equal_pycocoevalcap_called_directly():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    got = M.caption_metrics(PREDS, REFS, spice=False)
    # the COCO caption evaluation, as its own eval.py runs it
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": PREDS[k]}] for k in REFS})
    want, per = {}, {}
    bleu, bleu_items = Bleu(4).compute_score(gts, res)
    for n in range(4):
        want[f"BLEU-{n + 1}"], per[f"BLEU-{n + 1}"] = bleu[n], bleu_items[n]
    for name, scorer in (("METEOR", Meteor()), ("ROUGE-L", Rouge()), ("CIDEr", Cider())):
        want[name], per[name] = scorer.compute_score(gts, res)
    assert list(got.scores) == list(want)
    for name in want:
        assert got.scores[name] == pytest.approx(float(want[name]), abs=1e-12), name
        assert [got.per_item[k][name] for k in gts] == pytest.approx([float(v) for v in per[name]], abs=1e-12), name
    assert got.per_item["v3"]["CIDEr"] == 0.0 and got.per_item["img1"]["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert got.notes == []


def test_a_perfect_caption_scores_one_and_subsets_of_metrics_work():
    refs = {"a": ["a red circle on the left", "a red circle on the left"], "b": ["two blue squares at the top"] * 2}
    m = M.caption_metrics({"a": "a red circle on the left", "b": "two blue squares at the top"}, refs,
                          metrics=("BLEU-4", "ROUGE-L", "CIDEr"), spice=False)
    assert list(m.scores) == ["BLEU-4", "ROUGE-L", "CIDEr"]
    assert m.scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and m.scores["ROUGE-L"] == pytest.approx(1.0)
    # CIDEr-D's idf comes from the scored references: with two images every n-gram is in half the documents
    assert m.scores["CIDEr"] == pytest.approx(10.0, rel=1e-6)


def test_bad_inputs_and_spice_skip(monkeypatch):
    with pytest.raises(ClipPrefixError, match="no references"):
        M.caption_metrics({"a": "x"}, {"b": ["y"]})
    with pytest.raises(ClipPrefixError, match="Unknown metric"):
        M.caption_metrics({"a": "x"}, {"a": ["y"]}, metrics=("BLEU-5",))
    ok, why = M.spice_available()
    if not ok:   # offline here: SPICE is skipped with one line, the rest is still scored
        m = M.caption_metrics({"a": "a dog"}, {"a": ["a dog runs"]}, metrics=("BLEU-1",))
        assert "SPICE" not in m.scores and m.notes == [why] and why.startswith("SPICE skipped") and "\n" not in why
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ClipPrefixError, match="Java"):
        M.caption_metrics({"a": "a dog"}, {"a": ["a dog runs"]}, metrics=("BLEU-1",), spice=False)


def _stills(n, seed=0):
    rng = np.random.default_rng(seed)
    scenes = [synthetic.STILLS[i] for i in rng.choice(len(synthetic.STILLS), n, replace=False)]
    return scenes, [synthetic.draw_still(s, rng) for s in scenes]


def test_clipscore_and_refclipscore_by_hand(tiny_encoder):
    enc = tiny_encoder
    scenes, images = _stills(6)
    feats = enc.encode_images(images)                    # raw encode_image output, as caches hold it
    cands = [s.caption() for s in scenes[:3]] + [scenes[4].caption(), "", scenes[0].caption()]
    refs = [s.captions(None, 3) for s in scenes]
    got = M.clip_scores(enc, feats, cands, refs)

    def text(t):   # by hand: open_clip's own tokenizer and encode_text, then unit length
        e = enc.model.encode_text(enc.tokenizer(["A photo depicts " + x for x in t]))
        return e / e.norm(dim=-1, keepdim=True)

    with torch.no_grad():
        img = feats / feats.norm(dim=-1, keepdim=True)
        c = text(cands)
        clip_s = [2.5 * max(float(img[i] @ c[i]), 0.0) for i in range(6)]
        ref_sim = [max(max(float(c[i] @ r) for r in text(refs[i])), 0.0) for i in range(6)]
    ref_s = [2 * a * b / (a + b) if a + b > 0 else 0.0 for a, b in zip(clip_s, ref_sim)]
    assert got["per_item"]["CLIPScore"] == pytest.approx(clip_s, abs=1e-5)
    assert got["per_item"]["RefCLIPScore"] == pytest.approx(ref_s, abs=1e-5)
    assert got["CLIPScore"] == pytest.approx(np.mean(clip_s), abs=1e-5)
    assert got["RefCLIPScore"] == pytest.approx(np.mean(ref_s), abs=1e-5)
    # a caption that is one of the references has text-text similarity 1
    assert ref_sim[0] == pytest.approx(1.0, abs=1e-5)


def test_clipscore_prefers_the_right_caption_and_averages_video_frames(tiny_encoder):
    scenes, images = _stills(12, seed=1)
    feats = tiny_encoder.encode_images(images)
    right = M.clip_scores(tiny_encoder, feats, [s.caption() for s in scenes])["per_item"]["CLIPScore"]
    wrong = M.clip_scores(tiny_encoder, feats, [s.caption() for s in scenes[1:] + scenes[:1]])["per_item"]["CLIPScore"]
    assert np.mean(right) > np.mean(wrong)
    # a "video" of T frames is the mean of its normalised frame embeddings
    video = torch.stack([feats[:4], feats[4:8]])        # (2, 4, D)
    got = M.clip_scores(tiny_encoder, video, ["x", "y"])["per_item"]["CLIPScore"]
    unit = torch.nn.functional.normalize(feats, dim=-1)
    mean = torch.nn.functional.normalize(torch.stack([unit[:4].mean(0), unit[4:8].mean(0)]), dim=-1)
    t = tiny_encoder.encode_text(["A photo depicts x", "A photo depicts y"])
    assert got == pytest.approx((2.5 * (mean * t).sum(-1).clamp(min=0)).tolist(), abs=1e-5)
    assert M.clip_scores(tiny_encoder, [f for f in video], ["x", "y"])["per_item"]["CLIPScore"] == pytest.approx(got)
