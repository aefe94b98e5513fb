"""Dataset readers on the synthetic layouts, and on hand-made files for the corner cases."""
from __future__ import annotations

import json
import shutil

import pytest

from clipprefix.data import datasets as D
from clipprefix import synthetic as S
from clipprefix.base.errors import ClipPrefixError


def test_msrvtt(synth_root):
    root = synth_root / "msrvtt"
    assert D.detect(root) == "msrvtt"
    train, val, test = (D.load("msrvtt", root, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert [i.id for i in train][:3] == ["video0", "video1", "video2"] and val[0].id == "video12"
    assert {i.split for i in val} == {"val"}
    truth = json.loads((root / "train_val_videodatainfo.json").read_text())
    v0 = [s["caption"] for s in truth["sentences"] if s["video_id"] == "video0"]
    assert train[0].captions == v0 and len(v0) == 20   # every caption kept, in sen_id order
    assert all(i.path.is_file() and i.kind == "video" for i in train + val + test)
    assert len(D.load("msrvtt", root, "all")) == 20


def test_msrvtt_split_comes_from_the_field_and_release_folders(tmp_path, synth_root):
    root = tmp_path / "msrvtt"
    shutil.copytree(synth_root / "msrvtt", root)
    tv = json.loads((root / "train_val_videodatainfo.json").read_text())
    tv["videos"][0]["split"] = "validate"              # the field decides, not the id
    (root / "train_val_videodatainfo.json").write_text(json.dumps(tv))
    # the 2016 release ships TrainValVideo/ and TestVideo/ instead of videos/
    (root / "videos").rename(root / "TrainValVideo")
    (root / "TestVideo").mkdir()
    for p in sorted((root / "TrainValVideo").glob("*.mp4"))[-4:]:
        p.rename(root / "TestVideo" / p.name)
    val = D.read_msrvtt(root, "validate")
    assert "video0" in [i.id for i in val] and len(val) == 5
    assert all(i.path.is_file() for i in D.read_msrvtt(root, "all"))


def test_coco_karpathy(synth_root):
    root = synth_root / "coco"
    train = D.load("coco", root, "train")
    assert len(train) == 20 and len(D.read_coco_karpathy(root, "train", restval=False)) == 16
    assert len(D.load("coco", root, "val")) == 4 and len(D.load("coco", root, "test")) == 4
    it = train[0]
    assert it.kind == "image" and len(it.captions) == 5 and it.path.parent.name == "train2014"
    assert it.id == "100000"   # the cocoid
    assert {i.path.parent.name for i in D.load("coco", root, "test")} == {"val2014"}


def test_flickr30k(synth_root, tmp_path):
    root = synth_root / "flickr30k"
    items = D.load("flickr30k", root, "all")
    assert len(items) == 28 and all(len(i.captions) == 5 and i.path.is_file() for i in items)
    assert not items[0].captions[0].startswith(" ")       # leading spaces stripped
    splits = [i.split for i in items]
    assert splits.count("val") == 1 and splits.count("test") == 1 and splits[-1] == "test"
    # the broken rows of the common Kaggle copy ('name| 4 caption') still parse
    copy = tmp_path / "f"
    shutil.copytree(root, copy)
    csv = copy / "results.csv"
    lines = csv.read_text().splitlines()
    lines[5] = lines[5].replace("| 4|", "| 4")
    csv.write_text("\n".join(lines) + "\n")
    first = D.load("flickr30k", copy, "all")[0]
    assert first.captions == items[0].captions
    # Karpathy's dataset_flickr30k.json decides the split when present
    names = sorted(p.name for p in (copy / "flickr30k_images").iterdir())
    (copy / "dataset_flickr30k.json").write_text(json.dumps(
        {"images": [{"filename": n, "split": "test" if k < 3 else "train"} for k, n in enumerate(names)]}))
    assert len(D.load("flickr30k", copy, "test")) == 3


def test_user_folder_csv_jsonl_and_bare(synth_root, tmp_path):
    items = D.load("folder", synth_root / "user", "all")
    assert [i.id for i in items] == ["img_000", "img_001", "img_002", "img_003", "clips/clip_000", "clips/clip_001"]
    assert [i.kind for i in items].count("video") == 2 and len(items[4].captions) == 20
    j = tmp_path / "j"
    S.make_user_folder(j, captions_format="jsonl", n_images=2, n_videos=1)
    assert [len(i.captions) for i in D.load("auto", j, "all")] == [5, 5, 20]
    # a split column, and several rows per file
    c = tmp_path / "c"
    shutil.copytree(j, c)
    (c / "captions.jsonl").unlink()
    (c / "captions.csv").write_text("file,caption,split\nimg_000.jpg,a red circle on the left,test\n"
                                    "img_000.jpg,\"a red circle, left\",test\nimg_001.jpg,two squares,\n")
    test = D.load("folder", c, "test")
    assert [(i.id, i.captions) for i in test] == [("img_000", ["a red circle on the left", "a red circle, left"])]
    assert [i.id for i in D.load("folder", c, "train")] == ["img_001"]
    # no caption file: every image and video, without captions
    (c / "captions.csv").unlink()
    bare = D.load("folder", c, "all")
    assert sorted(i.id for i in bare) == ["clips/clip_000", "img_000", "img_001"] and bare[0].captions == []


@pytest.mark.parametrize("case", ["missing", "badjson", "nofield", "nomedia"])
def test_errors_name_the_file(tmp_path, synth_root, case):
    root = tmp_path / "m"
    shutil.copytree(synth_root / "msrvtt", root)
    ann = root / "train_val_videodatainfo.json"
    if case == "missing":
        ann.unlink()
        match = "train_val_videodatainfo.json does not exist"
    elif case == "badjson":
        ann.write_text('{"videos": [')
        match = "train_val_videodatainfo.json is not valid JSON"
    elif case == "nofield":
        ann.write_text('{"info": {}}')
        match = "lacks the field 'videos'"
    else:
        shutil.rmtree(root / "videos")
        match = "None of the 12 MSR-VTT video files"
    with pytest.raises(ClipPrefixError, match=match):
        D.load("msrvtt", root, "train")


def test_bad_names():
    with pytest.raises(ClipPrefixError, match="Unknown split"):
        D.split_name("holdout")
    with pytest.raises(ClipPrefixError, match="Unknown dataset"):
        D.dataset_name("imagenet")
    assert D.split_name("validate") == "val" and D.dataset_name("MSR-VTT") == "msrvtt"
