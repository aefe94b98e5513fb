"""Real-media timelines (issue 12): first frame not at 0, the end from the frames, WebM without a duration,
non-square pixels, one-frame and encrypted videos, containers named by no whitelist; checked against PyAV
decoding every frame (media_checks.probe_frames) and the writers' own truth."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import media as M
from media_checks import probe_frames, scene_of

from clipprefix.base.errors import ClipPrefixError
from clipprefix.data import video as V


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {"ts": M.write_ts(d), "ts3600": M.write_ts(d, "offset3600.ts", start=3600.0, seconds=2.0, scenes=2),
            "m2ts": M.write_ts(d, "clip.m2ts", m2ts=True), "mts": M.write_ts(d, "CLIP0001.MTS", m2ts=True),
            "vob": M.write_vob(d), "mpg": M.write_vob(d, "program.mpg", fmt="mpeg"), "edited": M.write_edited_mp4(d),
            "vfr": M.write_vfr_mp4(d), "webm8": M.write_webm_no_duration(d),
            "webm9": M.write_webm_no_duration(d, "recording_vp9.webm", codec="libvpx-vp9"),
            "ana": M.write_anamorphic(d), "ana_mkv": M.write_anamorphic(d, "anamorphic.mkv", fmt="matroska"),
            "one": M.write_one_frame(d), "enc": M.write_encrypted_mp4(d), "ogv": M.write_ogv(d)}


@pytest.mark.parametrize("name", ["ts", "ts3600", "m2ts", "mts", "vob", "mpg", "edited", "vfr", "webm8", "webm9",
                                  "ogv", "one"])
def test_the_timeline_runs_from_the_first_frame_to_the_end_of_the_last(files, name):
    m = files[name]
    truth = probe_frames(m.path)
    assert truth["first"] == pytest.approx(m.truth["first"], abs=1e-3)      # the writer and PyAV agree
    info = V.probe(m.path)
    assert info.start == pytest.approx(truth["first"], abs=1e-6)
    assert info.end == pytest.approx(truth["end"], abs=1e-3), (info, truth["end"])
    assert info.duration == pytest.approx(truth["end"] - truth["first"], abs=1e-3)


def test_a_header_shorter_than_the_frames_does_not_cut_the_timeline(files):
    m = files["vfr"]
    assert m.truth["header_duration"] < m.truth["end"] - 0.15                # the file really lies
    info = V.probe(m.path)
    assert info.duration == pytest.approx(m.truth["end"], abs=1e-3)
    spans = V.parse_policy("uniform:4").slots(info)
    assert spans[-1][1] == pytest.approx(m.truth["end"], abs=1e-3)
    last = next(V.frames_at(m.path, [m.truth["end"] - 0.01]))
    assert last.time == pytest.approx(m.truth["frames"][-1], abs=1e-6)       # the last frames are reachable


@pytest.mark.parametrize("name", ["webm8", "webm9"])
def test_webm_without_a_duration_is_read_to_its_end(files, name):
    m = files[name]
    assert m.truth["has_duration_element"] is False
    info = V.probe(m.path)
    assert info.duration == pytest.approx(3.0, abs=1e-3) and info.frame_count == 90
    frames = list(V.sample(m.path, "uniform:3"))
    assert [scene_of(f.image) for f in frames] == [0, 1, 2]


@pytest.mark.parametrize("name", ["ana", "ana_mkv"])
def test_non_square_pixels_are_shown_at_their_display_size(files, name):
    m = files[name]
    assert probe_frames(m.path)["display_size"] == (640, 360)                 # PyAV: 480 coded x SAR 4:3
    info = V.probe(m.path)
    assert (info.width, info.height) == (640, 360)
    full = next(V.frames_at(m.path, [0.5]))
    small = next(V.frames_at(m.path, [0.5], short_side=180))
    assert full.image.shape == (360, 640, 3) and small.image.shape == (180, 320, 3)
    # the white square (top left, above the frame-code stripe) is 60 x 60 coded pixels, 80 x 60 on screen
    white = (full.image[:150, :300] > 240).all(axis=2)
    ys, xs = np.nonzero(white)
    assert xs.max() - xs.min() + 1 == pytest.approx(80, abs=3) and ys.max() - ys.min() + 1 == 60


def test_a_one_frame_video_is_a_video_of_one_frame(files):
    m = files["one"]
    info = V.probe(m.path)
    assert info.duration == pytest.approx(0.04, abs=1e-6) and info.frame_count == 1
    frames = list(V.sample(m.path, "uniform:1"))
    assert len(frames) == 1 and scene_of(frames[0].image) == 1 and frames[0].time == 0.0


def test_an_encrypted_mp4_says_it_is_encrypted(files):
    with pytest.raises(ClipPrefixError, match="is encrypted") as e:
        V.probe(files["enc"].path)
    assert "corrupt" not in str(e.value)


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    import os

    p = tmp_path / "x.mp4"
    os.mkfifo(p)
    box = {}

    def run():
        try:
            V.probe(p)
        except ClipPrefixError as e:
            box["err"] = str(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "opening a named pipe blocked"
    assert "not a regular file" in box.get("err", "")


def test_the_end_is_found_without_decoding_and_only_once_per_file(files, monkeypatch):
    import av

    m = files["webm8"]
    V.probe(m.path)
    opened = []
    real = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    V.probe(m.path)
    assert len(opened) == 1      # the end found on the first probe is remembered for the unchanged file
