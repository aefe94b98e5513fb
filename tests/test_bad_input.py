"""Bad input: one clear sentence on stderr, exit status != 0, no traceback, no partial output file."""
import json
import shutil

import numpy as np
import pytest

from clipprefix import synthetic
from clipprefix.apps import cli
from clipprefix.core.presets import resolve


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = synthetic.write_image(root / "good.jpg", synthetic.draw_still(synthetic.STILLS[0], np.random.default_rng(0)))
    clip = synthetic.make_video(root / "clip.mp4", n_scenes=2, scene_seconds=1.0, fps=10).path
    data = good.read_bytes()
    (root / "garbage.jpg").write_bytes(bytes(range(256)) * 8)
    (root / "empty.jpg").write_bytes(b"")
    (root / "empty.mp4").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    rng = np.random.default_rng(1)   # index first (faststart): it opens, then the data runs out at ~3 s
    frames = [synthetic.draw_still(synthetic.STILLS[i], rng, (160, 120)) for i in range(60)]
    late = synthetic.write_mp4(root / "late.mp4", frames, 10, faststart=True).read_bytes()
    (root / "late.mp4").write_bytes(late[: int(len(late) * 0.6)])
    (root / "notes.txt").write_text("hello")
    (root / "picture.mp4").write_bytes(data)                     # an image named like a video
    (root / "movie.jpg").write_bytes(clip.read_bytes())          # a video named like an image
    (root / "no_media").mkdir()
    (root / "no_media" / "readme.md").write_text("nothing to see")
    (root / "a_file").write_text("I am a file, not a folder")
    return root


def caption(capsys, *argv, model="tiny"):
    rc = cli.main(["caption", *map(str, argv), "--model", str(model), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_sentence(rc, err, *words):
    lines = err.strip().splitlines()
    assert rc != 0
    assert len(lines) == 1 and lines[0].startswith("clipprefix ") and ": error: " in lines[0], err
    assert "Traceback" not in err and lines[0].rstrip().endswith((".", ")")), err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def outputs(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("name, words", [
    ("garbage.jpg", ["garbage.jpg", "not a readable image"]),
    ("empty.jpg", ["empty.jpg", "empty (0 bytes)"]),
    ("truncated.jpg", ["truncated.jpg"]),
    ("empty.mp4", ["empty.mp4", "empty"]),
    ("truncated.mp4", ["truncated.mp4"]),
    ("late.mp4", ["late.mp4", "truncated"]),
    ("notes.txt", ["notes.txt", "neither an image"]),
    ("missing.jpg", ["missing.jpg", "no such file"]),
    ("no_media", ["no_media", "no images or videos"]),
    ("nothing*.png", ["nothing*.png", "matches no"]),
])
def test_unreadable_empty_truncated_and_wrong_type_inputs(files, tmp_path, capsys, name, words):
    before = outputs(files)
    rc, out, err = caption(capsys, files / name, "--out", tmp_path / "o", "--render", tmp_path / "r")
    assert_one_sentence(rc, err, *words)
    assert out == "" and outputs(tmp_path) == [] and outputs(files) == before


@pytest.mark.parametrize("args, words", [
    (["--every", "5"], ["shorter than one 5 s segment"]),
    (["--segments", "500"], ["too few for 500 segments"]),
    (["--segments", "0"], ["--segments must be at least one"]),
    (["--segments", "-3"], ["--segments must be at least one"]),
    (["--every", "0"], ["--every takes a positive"]),
    (["--every", "-2"], ["--every takes a positive"]),
    (["--scenes", "0"], ["threshold"]),
    (["--scenes", "1.5"], ["threshold"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--max-new-tokens", "0"], ["max_new_tokens"]),
    (["--strategy", "beam", "--num-beams", "0"], ["num_beams"]),
    (["--temperature", "-1"], ["temperature"]),
    (["--top-p", "0"], ["top_p"]),
    (["--merge-similarity", "-0.5"], ["--merge-similarity"]),
    (["--formats", "srt,docx"], ["--formats"]),
])
def test_short_videos_and_impossible_counts(files, tmp_path, capsys, args, words):
    rc, out, err = caption(capsys, files / "clip.mp4", "--out", tmp_path / "o", *args)
    assert_one_sentence(rc, err, *words)
    assert outputs(tmp_path) == []


def test_unwritable_output_folders(files, tmp_path, capsys):
    rc, _, err = caption(capsys, files / "clip.mp4", "--out", files / "a_file" / "sub")
    assert_one_sentence(rc, err, "cannot be created", "is a file")
    rc, _, err = caption(capsys, files / "good.jpg", "--render", files / "a_file")
    assert_one_sentence(rc, err, "cannot be created")


def test_missing_and_mismatched_checkpoints(files, tmp_path, capsys):
    rc, _, err = caption(capsys, files / "good.jpg", model=tmp_path / "nowhere")
    assert_one_sentence(rc, err, "no checkpoint")
    rc, _, err = caption(capsys, files / "good.jpg", model=files / "no_media")
    assert_one_sentence(rc, err, "not a clipprefix checkpoint")
    rc, _, err = caption(capsys, files / "good.jpg", model="no-such-preset")
    assert_one_sentence(rc, err, "no-such-preset")
    bad = tmp_path / "mismatched"
    shutil.copytree(resolve("tiny"), bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["mapper"]["prefix_length"] = 7                        # the weights were made for 4 prefix tokens
    (bad / "config.json").write_text(json.dumps(cfg))
    rc, out, err = caption(capsys, files / "good.jpg", "--out", tmp_path / "o", model=bad)
    assert_one_sentence(rc, err, "do not match")
    assert out == "" and not (tmp_path / "o").exists()
    shutil.copyfile(files / "truncated.jpg", bad / "model.safetensors")
    rc, _, err = caption(capsys, files / "good.jpg", model=bad)
    assert_one_sentence(rc, err, "corrupt")


@pytest.mark.parametrize("argv, words", [
    (["--source", "{root}/missing.mp4"], ["missing.mp4", "does not exist"]),
    (["--source", "{root}/truncated.mp4"], ["truncated.mp4"]),
    (["--source", "{root}/notes.txt"], ["notes.txt"]),
    (["--source", "7"], ["camera 7"]),
    (["--source", "{root}/clip.mp4", "--speed", "0"], ["--speed"]),
    (["--source", "{root}/clip.mp4", "--srt", "{root}/a_file/x.srt"], ["cannot be created"]),
    (["--source", "{root}/clip.mp4", "--srt", "{root}/x.txt"], [".srt"]),
])
def test_live_bad_sources(files, capsys, argv, words):
    before = outputs(files)
    rc = cli.main(["live", "--headless", "--model", "tiny", *[a.format(root=files) for a in argv]])
    out, err = capsys.readouterr()
    assert_one_sentence(rc, err, *words)
    assert outputs(files) == before


def test_a_decompression_bomb_is_refused_in_one_sentence(files, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)     # good.jpg now has far "too many" pixels
    rc, out, err = caption(capsys, files / "good.jpg", "--out", tmp_path / "o")
    assert_one_sentence(rc, err, "good.jpg", "decompression bomb")
    assert out == "" and outputs(tmp_path) == []
