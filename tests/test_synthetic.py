"""The synthetic data: deterministic, captions that say what is drawn, files in the real layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clipprefix import synthetic as S
from clipprefix.base.errors import ClipPrefixError


def _shape_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the coloured shape: far from grey (the background is grey with mild noise)."""
    a = img.astype(int)
    return (a.max(-1) - a.min(-1)) > 80


def _runs(profile: np.ndarray) -> int:
    on = profile > 0
    return int(on[0]) + int(np.sum(on[1:] & ~on[:-1]))


@pytest.mark.parametrize("still", S.STILLS[::7])
def test_still_drawing_matches_caption(still):
    img = S.draw_still(still, np.random.default_rng(3))
    mask = _shape_mask(img)
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    cx, cy = xs.mean() / w, ys.mean() / h
    expect = {"left": cx < 0.4, "right": cx > 0.6, "top": cy < 0.4, "bottom": cy > 0.6}[still.position]
    assert expect, (still, cx, cy)
    # the shape's mean colour is dominated by the named colour's channels
    mean = img[mask].mean(0)
    ref = np.array(S.COLOURS[still.colour], dtype=float)
    assert np.argmax(mean) == np.argmax(ref)
    # two shapes are two separate blobs along the region's long axis
    axis = 0 if still.position in ("left", "right") else 1   # tall regions stack along y
    assert _runs(mask.sum(axis=1 - axis)) == still.count


@pytest.mark.parametrize("motion", S.MOTIONS[::5])
def test_motion_frames_move_in_the_stated_direction(motion):
    frames = list(S.motion_frames(motion, np.random.default_rng(1), (128, 96), 12))
    def centre(f):
        ys, xs = np.nonzero(_shape_mask(f))
        return xs.mean(), ys.mean()
    (x0, y0), (x1, y1) = centre(frames[0]), centre(frames[-1])
    dx, dy = x1 - x0, y1 - y0
    expect = {"left to right": dx > 50, "right to left": dx < -50,
              "top to bottom": dy > 40, "bottom to top": dy < -40}[motion.direction]
    assert expect, (motion, dx, dy)


def test_captions_canonical_first_and_parts_round_trip():
    rng = np.random.default_rng(0)
    st = S.Still("red", "circle", "left", 1)
    assert st.caption() == "a red circle on the left"
    assert S.Still("blue", "square", "top", 2).caption() == "two blue squares at the top"
    assert S.Motion("red", "circle", "left to right").caption() == "a red circle moves from left to right"
    caps = st.captions(rng)
    assert len(caps) == 5 and caps[0] == st.caption() and len(set(caps)) == 5
    vcaps = S.Motion("green", "triangle", "bottom to top").captions(rng)
    assert len(vcaps) == 20 and len(set(vcaps)) == 20
    vocab = set(S.all_captions())
    assert set(caps) <= vocab and set(vcaps) <= vocab
    for c in vcaps:
        assert S.caption_parts(c) == {"colour": "green", "shape": "triangle", "count": 1, "position": None,
                                      "direction": "bottom to top"}, c
    assert S.caption_parts("two yellow squares at the bottom of the image")["count"] == 2
    assert S.caption_parts("a red blue thing")["colour"] is None   # ambiguous -> None


def test_all_captions_cover_every_record(synth_root):
    vocab = set(S.all_captions())
    data = json.loads((synth_root / "msrvtt" / "train_val_videodatainfo.json").read_text())
    assert {s["caption"] for s in data["sentences"]} <= vocab


def test_deterministic_and_prefix_stable(tmp_path):
    a = S.make_msrvtt(tmp_path / "a", seed=5, n_train=3, n_val=1, n_test=1)
    b = S.make_msrvtt(tmp_path / "b", seed=5, n_train=3, n_val=1, n_test=1)
    c = S.make_msrvtt(tmp_path / "c", seed=6, n_train=3, n_val=1, n_test=1)
    for name in ("train_val_videodatainfo.json", "test_videodatainfo.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert [i.captions for i in a] == [i.captions for i in b] != [i.captions for i in c]
    from clipprefix.data import video
    fa = next(video.sample(a[0].path, "uniform:1")).image
    fb = next(video.sample(b[0].path, "uniform:1")).image
    assert np.array_equal(fa, fb)
    # a bigger dataset starts with the same images
    small = S.make_coco_karpathy(tmp_path / "s", seed=1, n_train=2, n_restval=0, n_val=0, n_test=0)
    big = S.make_coco_karpathy(tmp_path / "l", seed=1, n_train=6, n_restval=1, n_val=1, n_test=1)
    assert small[0].path.read_bytes() == big[0].path.read_bytes() and small[1].captions == big[1].captions


def test_layouts_have_the_real_field_names(synth_root):
    tv = json.loads((synth_root / "msrvtt" / "train_val_videodatainfo.json").read_text())
    te = json.loads((synth_root / "msrvtt" / "test_videodatainfo.json").read_text())
    assert set(tv) == {"info", "videos", "sentences"}
    assert set(tv["videos"][0]) == {"id", "video_id", "category", "url", "start time", "end time", "split"}
    assert set(tv["sentences"][0]) == {"sen_id", "video_id", "caption"}
    assert {v["split"] for v in tv["videos"]} == {"train", "validate"} and {v["split"] for v in te["videos"]} == {"test"}
    ids = [int(v["video_id"][5:]) for v in tv["videos"] + te["videos"]]
    assert ids == list(range(len(ids)))   # contiguous, train first, as the real split
    assert all((synth_root / "msrvtt" / "videos" / f"video{i}.mp4").is_file() for i in ids)

    coco = json.loads((synth_root / "coco" / "dataset_coco.json").read_text())
    im = coco["images"][0]
    assert set(im) == {"filepath", "filename", "imgid", "cocoid", "split", "sentids", "sentences"}
    assert set(im["sentences"][0]) == {"tokens", "raw", "imgid", "sentid"}
    assert {i["split"] for i in coco["images"]} == {"train", "restval", "val", "test"}
    assert all((synth_root / "coco" / i["filepath"] / i["filename"]).is_file() for i in coco["images"])

    lines = (synth_root / "flickr30k" / "results.csv").read_text().splitlines()
    assert lines[0] == "image_name| comment_number| comment"
    name, num, comment = lines[1].split("|")
    assert num == " 0" and comment.startswith(" a") and (synth_root / "flickr30k" / "flickr30k_images" / name).is_file()

    assert (synth_root / "user" / "captions.csv").read_text().startswith("file,caption\n")


def test_user_folder_jsonl(tmp_path):
    items = S.make_user_folder(tmp_path, captions_format="jsonl", n_images=2, n_videos=1)
    recs = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [r["file"] for r in recs] == ["img_000.jpg", "img_001.jpg", "clips/clip_000.mp4"]
    assert recs[2]["captions"] == items[2].captions and len(recs[2]["captions"]) == 20


def test_make_video_scenes(tmp_path):
    v = S.make_video(tmp_path / "demo.mp4", seed=2, n_scenes=3, scene_seconds=2.0, fps=10)
    assert [(s.start, s.end) for s in v.scenes] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert v.boundaries == [2.0, 4.0] and v.duration == 6.0
    for a, b in zip(v.scenes, v.scenes[1:]):
        assert a.attributes["colour"] != b.attributes["colour"] and a.attributes["shape"] != b.attributes["shape"]
    assert all(S.caption_parts(s.caption)["colour"] == s.attributes["colour"] for s in v.scenes)


def test_write_mp4_rejects_odd_sizes(tmp_path):
    with pytest.raises(ClipPrefixError, match="even"):
        S.write_mp4(tmp_path / "odd.mp4", [np.zeros((33, 32, 3), np.uint8)] * 2)
    assert not list(tmp_path.iterdir())   # nothing half-written left behind
