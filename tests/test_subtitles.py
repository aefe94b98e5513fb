"""Subtitle cues: exact millisecond times, tiling without gaps or overlaps, line limits, merging, formats."""
import json
import random

import pytest

from clipprefix.base.errors import ClipPrefixError
from clipprefix.apps.subtitles import (Cue, layout, merge_cues, parse_srt, similarity, srt_time, tile, to_json, to_srt,
                                  to_vtt, wrap, write_subtitles)

WORDS = "a red circle on the left two blue squares at the top of the image moves from right to left".split()


def test_times_are_exact_milliseconds():
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3661.5) == "01:01:01,500"
    assert to_vtt([Cue(3661.5, 3662.0, "x")]).splitlines()[2].startswith("01:01:01.500 --> ")
    assert srt_time(59.9995) == "00:01:00,000"        # rounds half up, carries into minutes
    assert srt_time(2 / 3) == "00:00:00,667"
    assert srt_time(100 * 3600 + 0.001) == "100:00:00,001"
    with pytest.raises(ClipPrefixError):
        srt_time(-0.5)


def test_wrap_limits_keep_every_word_and_balance_two_lines():
    rng = random.Random(0)
    for _ in range(300):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
        blocks = wrap(text)
        assert all(1 <= len(b) <= 2 and all(len(line) <= 42 for line in b) for b in blocks)
        assert " ".join(" ".join(b) for b in blocks).split() == text.split()
    two = wrap("a small red circle moves across the frame from left to right")
    assert len(two) == 1 and len(two[0]) == 2
    assert two[0] == ["a small red circle moves across", "the frame from left to right"]   # most even split


def test_wrap_cuts_words_longer_than_a_line_and_unspaced_scripts():
    blocks = wrap("x" * 100)
    assert [len(line) for b in blocks for line in b] == [42, 42, 16]
    cjk = "一只红色的圆形从左边移动到右边" * 4           # no spaces at all
    lines = [line for b in wrap(cjk) for line in b]
    assert "".join(lines) == cjk and all(len(line) <= 42 for line in lines)


def test_layout_tiles_the_timeline_with_long_captions_split():
    rng = random.Random(1)
    bounds = [0.0] + sorted(rng.uniform(0, 60) for _ in range(30)) + [60.0]
    cues = [Cue(a, b, " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 45))))
            for a, b in zip(bounds[:-1], bounds[1:])]
    shown = layout(cues)
    assert len(shown) > len(cues) - 1                     # long captions became several display cues
    assert shown[0][0] == 0 and shown[-1][1] == 60000
    for (s, e, lines), nxt in zip(shown, shown[1:] + [None]):
        assert s < e and 1 <= len(lines) <= 2 and all(len(x) <= 42 for x in lines)
        if nxt is not None:
            assert e == nxt[0]                           # no gap, no overlap, to the millisecond


def test_layout_rejects_overlaps():
    with pytest.raises(ClipPrefixError, match="overlap"):
        layout([Cue(0, 2, "a"), Cue(1, 3, "b")])


def test_tile_closes_gaps_and_overlaps():
    cues = tile([Cue(0.5, 1.0, "a"), Cue(2.0, 2.5, "b"), Cue(2.2, 9.0, "c")], 0.0, 10.0)
    assert [(c.start, c.end) for c in cues] == [(0.0, 2.0), (2.0, 2.2), (2.2, 10.0)]


def test_merge_identical_and_near_identical_keeps_best_scored_text():
    cues = [Cue(0, 2, "A red circle on the left.", -1.0, [1.0]),
            Cue(2, 4, "a red circle on the left", -0.5, [3.0]),
            Cue(4, 6, "a red circle on the left side", -2.0, [5.0]),
            Cue(6, 8, "a blue circle on the left", -0.1, [7.0]),
            Cue(8, 10, "", -0.1, [9.0]),
            Cue(10, 12, "two yellow squares at the top", -0.3, [11.0])]
    merged = merge_cues(cues)
    assert [(c.start, c.end) for c in merged] == [(0, 6), (6, 10), (10, 12)]
    assert merged[0].text == "a red circle on the left" and merged[0].score == -0.5
    assert merged[0].frames == [1.0, 3.0, 5.0] and len(merged[0].parts) == 3
    assert merged[1].text == "a blue circle on the left"          # the empty caption joined it
    assert len(merge_cues(cues, threshold=1.0)) == 4                # only exact (case/punctuation) matches
    assert len(merge_cues(cues, threshold=2.0)) == 5                # nothing merged except the empty caption
    assert similarity("a red circle", "A red circle!") == 1.0
    assert similarity("a red circle on the left", "a blue circle on the left") < 0.85


def test_srt_vtt_json_agree_and_round_trip():
    cues = [Cue(0, 1.25, "a <red> circle & more"), Cue(1.25, 3.0, "x --> y"), Cue(3.0, 3.0004, "invisible")]
    srt, vtt = to_srt(cues), to_vtt(cues)
    back = parse_srt(srt)
    assert [(c.start, c.end) for c in back] == [(0, 1.25), (1.25, 3.0)]
    assert back[1].text == "x → y" and "-->" not in back[1].text
    assert vtt.startswith("WEBVTT\n\n") and "00:00:01.250 --> 00:00:03.000" in vtt
    assert "a &lt;red&gt; circle &amp; more" in vtt and "a <red> circle & more" in srt
    data = json.loads(to_json(cues, video="v.mp4"))
    assert data["video"] == "v.mp4" and len(data["segments"]) == 2
    assert data["segments"][1]["start_srt"] == "00:00:01,250" and data["segments"][1]["end"] == 3.0


def test_write_subtitles_is_all_or_nothing(tmp_path):
    out = write_subtitles([Cue(0, 1, "a")], tmp_path / "o", "clip")
    assert sorted(p.name for p in out.values()) == ["clip.json", "clip.srt", "clip.vtt"]
    with pytest.raises(ClipPrefixError):
        write_subtitles([Cue(0, 2, "a"), Cue(1, 3, "b")], tmp_path / "bad", "clip")
    assert not (tmp_path / "bad").exists()
