"""`clipprefix demo` end to end, offline, at a reduced size: it must train a captioner that works."""
import json
import shutil

import pytest

from clipprefix.apps import cli
from clipprefix.apps import demo
from clipprefix.apps.subtitles import parse_srt
from clipprefix.synthetic import caption_parts


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    rc = cli.main(["demo", "--out", str(out), "--images", "192", "--epochs", "8", "--quiet"])
    return rc, out


def test_demo_writes_subtitles_pages_and_a_trained_checkpoint(run):
    rc, out = run
    assert rc == 0
    for name in ("captions/demo_video.srt", "captions/demo_video.vtt", "captions/demo_video.json", "video.html",
                 "eval/gallery.html", "eval/metrics.json", "run/best/config.json"):
        assert (out / name).is_file(), name
    cues = parse_srt((out / "captions" / "demo_video.srt").read_text())
    assert cues[0].start == 0.0 and cues[-1].end == 12.0 and all(a.end == b.start for a, b in zip(cues, cues[1:]))
    data = json.loads((out / "captions" / "demo_video.json").read_text())
    assert len(data["segments"]) == len(cues) and sum(len(s["parts"]) for s in data["segments"]) == 12
    assert len(list((out / "captions" / "demo_video_keyframes").iterdir())) == len(cues)
    assert "<img" in (out / "eval" / "gallery.html").read_text()


def test_the_trained_captioner_names_what_each_scene_shows(run):
    _, out = run
    cues = parse_srt((out / "captions" / "demo_video.srt").read_text())
    truth = {"a blue circle on the left": 1.5, "two yellow squares at the top": 4.5,
             "a blue triangle on the right": 7.5, "a green circle at the bottom": 10.5}
    said = {cap: next(c.text for c in cues if c.start <= t < c.end).replace("\n", " ") for cap, t in truth.items()}
    # every scene's colour, and most scenes entirely (the untrained tiny preset gets none)
    assert all(caption_parts(s)["colour"] == caption_parts(c)["colour"] for c, s in said.items()), said
    assert sum(caption_parts(s) == caption_parts(c) for c, s in said.items()) >= 2, said
    metrics = json.loads((out / "eval" / "metrics.json").read_text())["metrics"]
    assert metrics["CIDEr"] > 2.0 and metrics["BLEU-4"] > 0.5        # pycocoevalcap's scale: CIDEr 0-10, BLEU 0-1


def test_without_java_the_demo_skips_only_the_evaluation(run, tmp_path, monkeypatch):
    _, out = run
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    said = []
    res, gallery = demo.evaluate_and_gallery(out / "run" / "best", {"val": out / "features" / "val"}, tmp_path,
                                             log=said.append)
    assert res is None and gallery is None and "Java" in said[0] and list(tmp_path.iterdir()) == []


def test_the_demo_never_touches_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("three years of work")
    assert cli.main(["demo", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "did not write" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "run" / "thesis.tex").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_demo_folder_from_before_the_marker_is_still_the_demos(tmp_path):
    old = tmp_path / "demo"
    (old / "run" / "best").mkdir(parents=True)
    (old / "demo_video.mp4").write_bytes(b"x")
    demo.claim_folder(old)                                    # what an earlier clipprefix demo left: accepted
    assert (old / demo.MARKER).is_file()
    mixed = tmp_path / "mixed"
    (mixed / "run").mkdir(parents=True)
    (mixed / "demo_video.mp4").write_bytes(b"x")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(demo.ClipPrefixError, match="did not write"):
        demo.claim_folder(mixed)                              # anything else in it: refused
