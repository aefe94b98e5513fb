"""`clipprefix caption` and `live` on real media (issue 12 items 2, 3, 5, 7, 8, 10, 11; issue 14 item 8): files
are taken by their content, not their names; one bad item never stops a batch; previews keep the sound and
the display aspect; the live SRT ends where the frames end and reads well."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import media as M
import media_images as MI
from media_checks import is_upright, probe_frames, read_srt

from clipprefix.apps import cli
from clipprefix.apps.live import LiveCaption, LiveResult, open_source, run_session, session_cues
from clipprefix.apps.options import load_captioner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def caption(capsys, *argv):
    rc = cli.main(["caption", *map(str, argv), "--model", "tiny", "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("apps_media")
    return {"ts": M.write_ts(d), "ts_audio": M.write_ts(d, "with_audio.ts", audio=True),
            "mp4_audio": M.write_mp4(d, "with_audio.mp4", audio=True), "thin": M.write_thin(d),
            "pcm_audio": M.write_mp4(d, "pcm_audio.mov", audio=True, fmt="mov", audio_codec="pcm_s16le"),
            "dot": M.write_thin(d, size=(1, 1)), "vfr": M.write_vfr_mp4(d), "webm": M.write_webm_no_duration(d),
            "ana": M.write_anamorphic(d), "one": M.write_one_frame(d), "enc": M.write_encrypted_mp4(d)}


def test_one_bad_item_never_stops_a_batch(made, tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    rc, out, err = caption(capsys, bad, made["thin"].path, made["dot"].path, made["ts"].path, "--out", tmp_path / "o",
                           "--preview", "--keyframes")
    assert rc == 1 and "Traceback" not in err and err.count("error:") == 1 and "notes.mp4" in err, err
    assert read_srt(tmp_path / "o" / "offset.srt")                       # the last video was captioned
    for stem in ("thin_1x64", "thin_1x1"):
        info = probe_frames(tmp_path / "o" / f"{stem}_preview.mp4")
        assert info["display_size"][0] >= 2 and info["display_size"][1] >= 2
        for jpg in (tmp_path / "o" / f"{stem}_keyframes").iterdir():
            with Image.open(jpg) as im:
                assert im.width <= 384 and im.height <= 1024, (jpg.name, im.size)   # not 384 x 24576


def test_an_unexpected_failure_is_reported_and_the_batch_goes_on(made, tmp_path, capsys, monkeypatch):
    import clipprefix.apps.caption as image_side
    import clipprefix.apps.commands.caption as command

    real_video, real_image = command.caption_video, image_side.open_image

    def video_breaks(cap, path, *a, **kw):
        if path.name == "offset.ts":
            raise RuntimeError("decoder exploded")
        return real_video(cap, path, *a, **kw)

    def image_breaks(p):
        if p.name == "b.png":
            raise ValueError("bad luck")
        return real_image(p)

    monkeypatch.setattr(command, "caption_video", video_breaks)
    monkeypatch.setattr(image_side, "open_image", image_breaks)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(MI.canonical_image()).save(tmp_path / name)
    rc, out, err = caption(capsys, tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png", made["ts"].path,
                           made["one"].path, "--out", tmp_path / "o")
    assert rc == 1 and "Traceback" not in err
    assert err.count("error:") == 2 and "decoder exploded" in err and "RuntimeError" in err and "bad luck" in err
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(tmp_path / "a.png"), str(tmp_path / "c.png"),
                                                                  str(made["one"].path)]


def test_inputs_are_taken_by_content_and_folders_report_what_they_skip(tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    kinds = [M.write_vob(d), M.write_ts(d, "clip.m2ts", m2ts=True, seconds=2.0, scenes=2),
             M.write_ts(d, "CLIP0001.MTS", m2ts=True, seconds=2.0, scenes=2), M.write_ogv(d), MI.write_avif(d),
             MI.write_mpo(d)]
    (d / "readme.txt").write_text("not media")
    Image.fromarray(MI.canonical_image()).save(d / "picture.mp4", format="PNG")     # an image named like a video
    (d / "movie.jpg").write_bytes(kinds[0].path.read_bytes())                        # a video named like an image
    rc, out, err = caption(capsys, d, "--out", tmp_path / "o", "--json")
    recs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0, err
    assert sorted(r["path"] for r in recs) == sorted(str(p) for p in [*(m.path for m in kinds), d / "picture.mp4",
                                                                      d / "movie.jpg"])
    by_path = {r["path"]: r for r in recs}
    assert "segments" in by_path[str(d / "movie.jpg")] and "caption" in by_path[str(d / "picture.mp4")]
    assert err.strip() == f"clipprefix caption: skipped 1 file in {d} that is neither an image nor a video."


def test_a_named_pipe_is_refused_at_once(tmp_path, capsys):
    fifo = MI.make_fifo(tmp_path).path
    box = {}

    def run():
        box["rc"] = cli.main(["caption", str(fifo), "--model", "tiny", "--no-progress"])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the named pipe blocked the command"
    err = capsys.readouterr().err
    assert box["rc"] == 2 and "not a regular file (a named pipe)" in err and err.count("\n") == 1


def test_webm_one_frame_and_encrypted_videos_end_to_end(made, tmp_path, capsys):
    rc, out, err = caption(capsys, made["webm"].path, made["one"].path, "--out", tmp_path / "o")
    assert rc == 0, err
    assert read_srt(tmp_path / "o" / "one_frame.srt") == [(0.0, 0.04, read_srt(tmp_path / "o" / "one_frame.srt")[0][2])]
    assert read_srt(tmp_path / "o" / "recording.srt")[-1][1] == pytest.approx(3.0, abs=1e-3)
    rc, out, err = caption(capsys, made["enc"].path, "--out", tmp_path / "o")
    assert rc == 2 and "is encrypted" in err and err.count("\n") == 1


def test_preview_keeps_the_sound_and_help_says_so(made, tmp_path, capsys):
    for m in (made["mp4_audio"], made["ts_audio"], made["pcm_audio"]):     # copied, copied, re-encoded to AAC
        rc, _, err = caption(capsys, m.path, "--out", tmp_path / "o", "--preview", "--segments", "2")
        assert rc == 0, err
        prev = tmp_path / "o" / f"{m.path.stem}_preview.mp4"
        import av
        with av.open(str(prev)) as c:
            a = c.streams.audio[0]
            assert a.codec_context.name == "aac"
            packets = [p for p in c.demux(a) if p.pts is not None]
            last = float((packets[-1].pts + packets[-1].duration) * a.time_base)
        assert len(packets) > 100 and last == pytest.approx(4.0, abs=0.05)     # 4 s of sound from the start
    parser = cli.build_parser("caption")
    text = " ".join(parser._subparsers._group_actions[0].choices["caption"].format_help().split())
    assert "with the source's audio" in text


def test_anamorphic_keyframes_and_preview_are_shown_at_16_9(made, tmp_path, capsys):
    rc, _, err = caption(capsys, made["ana"].path, "--out", tmp_path / "o", "--keyframes", "--preview",
                         "--segments", "2", "--no-merge")
    assert rc == 0, err
    assert probe_frames(tmp_path / "o" / "anamorphic_preview.mp4")["display_size"] == (640, 360)
    jpgs = sorted((tmp_path / "o" / "anamorphic_keyframes").iterdir())
    assert len(jpgs) == 2 and len(read_srt(tmp_path / "o" / "anamorphic.srt")) == 2     # --no-merge: one per segment
    with Image.open(jpgs[0]) as im:
        assert im.width == 640 and im.height > 360             # the 640 x 360 frame, its caption under it


def test_live_ends_where_the_frames_end(made):
    cap = load_captioner("tiny")
    for m, end in ((made["vfr"], made["vfr"].truth["end"]), (made["ts"], 4.0)):
        r = run_session(cap, open_source(str(m.path), speed=40), warmup=False)
        assert r.reason == "end of stream" and r.end_time == pytest.approx(end, abs=1e-3), m.path.name
        cues = session_cues(r)
        assert cues[0].start == r.captions[0].time and cues[-1].end == pytest.approx(end, abs=1e-3)


def test_live_cues_merge_jitter_and_stay_on_screen_a_second():
    texts = ["a red circle on the left", "a red circle on the left.", "the red circle on the left",
             "A red circle on the left", "a red circle, on the left"] * 8 + ["two blue squares at the top"] * 3
    caps = [LiveCaption(0.1 * i, t, -1.0, 0.0, 0.0) for i, t in enumerate(texts)]
    caps.insert(20, LiveCaption(2.05, "a green triangle", -1.0, 0.0, 0.0))       # one 50 ms flash
    r = LiveResult(caps, 43, 4.3, 4.3, "end of stream")
    cues = session_cues(r)
    assert [(c.start, c.end, c.text) for c in cues] == [(0.0, 4.0, "a red circle on the left"),
                                                        (4.0, 4.3, "two blue squares at the top")]   # the last: what is left
    assert len(cues[0].frames) == 41                       # the flash's frame went with the cue that absorbed it


def test_exif_photos_render_upright_through_the_cli(tmp_path, capsys):
    m = MI.write_exif_jpeg(tmp_path, 6)
    rc, out, err = caption(capsys, m.path, "--render", tmp_path / "r")
    assert rc == 0, err
    drawn = np.asarray(Image.open(tmp_path / "r" / "orient_6.jpg").convert("RGB"))
    assert is_upright(drawn[:256], aspect=1.5)
