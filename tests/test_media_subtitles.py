"""Subtitles that line up and read well (issue 12 items 1, 9, 11; issue 14 item 8): cue times count from the
first frame, as players do, with the file's own times kept in the JSON; one cue per segment without
merging; a one-frame video is one cue; minimum on-screen time, display-width lines, right-to-left lines
marked, no U+FFFD or control characters. Every SRT / VTT is read back with `srt` / webvtt-py."""
from __future__ import annotations

import json
import os
import unicodedata

import pytest

import media as M
from media_checks import have_burn_in, lines_up, probe_frames, read_srt, read_vtt

from clipprefix.apps import subtitles as S
from clipprefix.apps.options import load_captioner
from clipprefix.apps.video_captions import caption_video
from clipprefix.core.captioner import Caption

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ["scene alpha", "scene bravo", "scene charlie", "scene delta"]


class Scripted:
    """The tiny captioner answering with `texts` in order, one per segment."""

    def __init__(self, real, texts):
        self.real, self.texts = real, list(texts)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def caption_features(self, feats, generation=None, **kw):
        return [Caption(self.texts.pop(0), [], [], -1.0) for _ in range(feats.shape[0])]


@pytest.fixture(scope="module")
def tiny():
    return load_captioner("tiny")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("offsets")
    return {"ts": M.write_ts(d), "ts3600": M.write_ts(d, "offset3600.ts", start=3600.0), "vob": M.write_vob(d),
            "edited": M.write_edited_mp4(d), "one": M.write_one_frame(d)}


@pytest.mark.parametrize("name", ["ts", "ts3600", "vob", "edited"])
def test_cues_count_from_the_first_frame_and_the_json_keeps_the_file_times(videos, tiny, tmp_path, name):
    m = videos[name]
    truth = probe_frames(m.path)
    first, length = truth["first"], truth["end"] - truth["first"]
    assert first > 0.4 and length == pytest.approx(4.0, abs=1e-3)
    r = caption_video(Scripted(tiny, NAMES), m.path, "uniform:4", merge=None, progress=False)
    out = r.write(tmp_path)
    for cues in (read_srt(out["srt"]), read_vtt(out["vtt"])):
        assert [c[2] for c in cues] == NAMES
        for k, (a, b, _) in enumerate(cues):
            assert a == pytest.approx(k * length / 4, abs=1e-3) and b == pytest.approx((k + 1) * length / 4, abs=1e-3)
    data = json.loads(out["json"].read_text())
    assert data["duration"] == pytest.approx(length, abs=1e-3) and data["start_time"] == pytest.approx(first, abs=1e-6)
    for k, seg in enumerate(data["segments"]):
        assert seg["start"] == pytest.approx(k * length / 4, abs=1e-3)
        assert seg["start_pts"] == pytest.approx(first + k * length / 4, abs=1e-3)
        assert seg["end_pts"] == pytest.approx(first + (k + 1) * length / 4, abs=1e-3)
        assert seg["start_pts"] <= seg["frames"][0] < seg["end_pts"]         # frames: the file's own times
    names = sorted(p.name for p in r.write(tmp_path / "k", keyframes=True)["keyframes"].iterdir())
    assert names[0].startswith("0001_00-00-00.000") and names[1].startswith("0002_00-00-01.000")


@pytest.mark.skipif(not have_burn_in() and not os.environ.get("CI"),
                    reason="needs a system ffmpeg with libass (.ci/run installs it; CI never skips this)")
def test_an_offset_ts_lines_up_with_ffmpegs_own_burn_in(videos, tiny, tmp_path):
    """`ffmpeg -i offset.ts -vf subtitles=offset.srt`: at each cue's middle frame ffmpeg shows that cue's text
    over the picture the caption was made from (first frame at 1.467 s)."""
    m = videos["ts"]
    r = caption_video(Scripted(tiny, NAMES), m.path, "uniform:4", merge=None, progress=False)
    out = r.write(tmp_path)
    rows = lines_up(m.path, out["srt"], out["json"])
    assert [(row["shown"], row["scene"], row["source_scene"]) for row in rows] == [(t, k, k) for k, t in enumerate(NAMES)]
    assert all(row["ok"] for row in rows)


def test_no_merge_gives_one_cue_per_segment_even_for_empty_captions(videos, tiny):
    texts = ["a red circle", "\ufffd\ufffd", "a blue square", "…"]
    r = caption_video(Scripted(tiny, texts), videos["edited"].path, "uniform:4", merge=None, progress=False)
    assert len(r.cues) == len(r.segments) == 4
    assert [c.text for c in r.cues] == ["a red circle", S.EMPTY, "a blue square", S.EMPTY]
    merged = caption_video(Scripted(tiny, texts), videos["edited"].path, "uniform:4", progress=False)
    assert len(merged.cues) == 2                      # with merging, the empty ones join a neighbour


def test_a_one_frame_video_is_one_cue(videos, tiny, tmp_path):
    r = caption_video(Scripted(tiny, ["a green square"]), videos["one"].path, strict=False, progress=False)
    out = r.write(tmp_path)
    assert read_srt(out["srt"]) == [(0.0, 0.04, "a green square")]


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1 for ch in line)


def test_lines_are_limited_by_display_width(tmp_path):
    text = "一只红色的猫坐在蓝色的沙发上看着窗外的小鸟它看起来非常开心而且很安静不想动一只狗很好"   # 42 wide characters
    assert len(text) == 42
    paths = S.write_subtitles([S.Cue(0.0, 6.0, text)], tmp_path, "zh", ("srt", "vtt"))
    for cues in (read_srt(paths["srt"]), read_vtt(paths["vtt"])):
        lines = [line for c in cues for line in c[2].split("\n")]
        assert all(_width(line) <= S.MAX_CHARS for line in lines), lines
        assert "".join(lines) == text
    assert _width("é̃a") == 2 and S.display_width("é̃a") == 2 and S.display_width("日本") == 4


def test_right_to_left_lines_are_marked_and_left_to_right_ones_are_not(tmp_path):
    paths = S.write_subtitles([S.Cue(0.0, 2.0, "قطة حمراء على الأريكة."), S.Cue(2.0, 4.0, "a red cat.")], tmp_path,
                              "rtl", ("srt", "vtt"))
    for cues in (read_srt(paths["srt"]), read_vtt(paths["vtt"])):
        assert cues[0][2].startswith("\u200f") and cues[0][2].strip("\u200f") == "قطة حمراء على الأريكة."
        assert cues[1][2] == "a red cat."


def test_split_cues_stay_on_screen_at_least_a_second_or_the_whole_segment(tmp_path):
    long = ("a very long caption about a red circle and two blue squares that keeps going well past what "
            "two lines of a subtitle can hold and then some more words")
    cues = [S.Cue(0.0, 1.5, long), S.Cue(1.5, 1.6, long), S.Cue(1.6, 8.0, long)]
    paths = S.write_subtitles(cues, tmp_path, "long", ("srt",))
    got = read_srt(paths["srt"])
    assert got[0][0] == 0.0 and got[-1][1] == 8.0
    assert all(b2 == pytest.approx(a1) for (_, b2, _), (a1, _, _) in zip(got, got[1:]))    # still tiled
    for a, b, _ in got:
        seg = next(c for c in cues if c.start - 1e-9 <= a < c.end)
        assert b - a >= min(1.0, seg.end - seg.start) - 1e-9, (a, b)
    inside = [g for g in got if g[0] < 1.5]
    assert len(inside) == 1 and inside[0][2].endswith("…")     # 1.5 s holds one block: the rest is cut short


def test_captions_never_carry_replacement_or_control_characters(tiny):
    tok = tiny.tokenizer
    ids = tok.encode("a red café ☃")
    assert tok.decode(ids[:-1]).endswith("\ufffd")               # cut inside the snowman's three bytes
    assert tiny.decode(ids[:-1]) == "a red café"
    assert tiny.decode(tok.encode("a red") + [200, 201, 202] + tok.encode(" cat")) == "a red cat"   # \v \f \r
    assert S.clean("a\x07 b\u200b\u202e c\ufffd\x00 d") == "a b c d"
    assert S.clean("\ufffd\ufffd") == S.EMPTY and S.clean("می\u200cخواهم") == "می\u200cخواهم"   # ZWNJ stays
