"""Galleries: best/worst selection, image and frame-strip pictures, standalone HTML, matplotlib figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clipprefix.data import datasets as D
from clipprefix.data import video
from clipprefix.base.errors import ClipPrefixError
from clipprefix.evaluation.gallery import make_gallery, select, thumbnail


@pytest.fixture(scope="module")
def records(synth_root):
    """Evaluation records as evaluate() writes them: 4 images, 2 videos, 1 file that has gone."""
    imgs = D.load("coco", synth_root / "coco", "test")
    vids = D.load("msrvtt", synth_root / "msrvtt", "test")[:2]
    recs = []
    for k, it in enumerate(imgs):
        recs.append({"id": it.id, "prediction": f"caption {k}", "references": it.captions, "path": str(it.path),
                     "kind": "image", "timestamps": [0.0], "scores": {"CIDEr": [0.5, 2.0, 0.1, 2.0][k], "BLEU-4": 0.1 * k}})
    for k, it in enumerate(vids):
        ts = [f.time for f in video.sample(it.path, "uniform:8")]
        recs.append({"id": it.id, "prediction": "<script>alert(1)</script> & more", "references": it.captions,
                     "path": str(it.path), "kind": "video", "timestamps": ts, "scores": {"CIDEr": 1.0 + k}})
    recs.append({"id": "gone", "prediction": "x", "references": ["y"], "path": str(synth_root / "nope.jpg"),
                 "kind": "image", "timestamps": [0.0], "scores": {"CIDEr": 0.0}})
    return recs


def test_select_best_and_worst(records):
    best, worst = select(records, "CIDEr", 3)
    assert [r["scores"]["CIDEr"] for r in best] == [2.0, 2.0, 2.0]
    assert best[0]["id"] < best[1]["id"]                        # ties broken by id: a stable choice
    assert [r["scores"]["CIDEr"] for r in worst] == [0.0, 0.1, 0.5]
    assert len(select(records, "BLEU-4", 10)[0]) == 4           # only the items that have the score
    with pytest.raises(ClipPrefixError, match="CLIPScore"):
        select(records, "CLIPScore")


def test_pictures_images_frame_strips_and_missing_files(records):
    img = thumbnail(records[0], height=80)
    assert img.dtype == np.uint8 and img.shape[0] == 80 and img.shape[2] == 3
    strip = thumbnail(records[4], height=60, frames=4)
    one = thumbnail(records[4], height=60, frames=1)
    assert strip.shape[0] == one.shape[0] == 60 and strip.shape[1] == 4 * one.shape[1] + 3 * 2
    # the strip shows the cached frames: its first tile is the frame at the first cached timestamp
    first = video.frames_at(records[4]["path"], [records[4]["timestamps"][0]], short_side=60)
    assert np.abs(one.astype(int) - np.asarray(next(iter(first)).image, dtype=int)[:, :one.shape[1]]).mean() < 8
    gone = thumbnail(records[-1], height=50)
    assert gone.shape[0] == 50 and (gone == gone[0, 0]).mean() > 0.8   # a plain tile that says so


def test_standalone_html_and_figures(records, tmp_path):
    g = make_gallery(records, tmp_path, by=("CIDEr", "CLIPScore"), n=3)   # CLIPScore absent: left out
    assert list(g.sections) == ["CIDEr: best", "CIDEr: worst"] and list(g.figures) == list(g.sections)
    page = g.html.read_text()
    assert g.html == tmp_path / "gallery.html"
    assert page.count("data:image/jpeg;base64,") == 6 and "src='http" not in page and "file://" not in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert len(g.figures["CIDEr: worst"].axes) == 3
    from IPython.core.formatters import DisplayFormatter
    shown, _ = DisplayFormatter().format(g.figures["CIDEr: worst"])   # what a notebook cell's value shows
    assert shown["image/png"].startswith(b"\x89PNG")
    body = g._repr_html_()       # shown inside a notebook page: its style must not restyle the page
    assert "<style>" in body and all(rule.startswith(".clipprefix-gallery") for rule in
                                     body.split("<style>")[1].split("</style>")[0].split("}")[:-1])
    assert "<bdi" in body
    assert "CIDEr: best" in g._repr_html_() and "<html" not in g._repr_html_()
    with pytest.raises(ClipPrefixError, match="None of the requested metrics"):
        make_gallery(records, tmp_path, by="SPICE")


def test_gallery_from_an_evaluation_folder(records, tmp_path):
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    g = make_gallery(tmp_path, by="CIDEr", n=2, figures=False)
    assert g.html == tmp_path / "gallery.html" and g.figures == {}
    assert g.html.read_text().count("data:image/jpeg;base64,") == 4
