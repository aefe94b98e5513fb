"""`clipprefix demo` end to end, offline, at a reduced size: it must train a captioner that works."""
import json

from clipprefix import cli
from clipprefix.subtitles import parse_srt
from clipprefix.synthetic import caption_parts


def test_demo_trains_a_captioner_and_captions_the_video(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--out", str(out), "--images", "192", "--epochs", "8", "--quiet"])
    log = capsys.readouterr().out
    assert rc == 0
    for name in ("captions/demo_video.srt", "captions/demo_video.vtt", "captions/demo_video.json", "gallery.html",
                 "run/best/config.json"):
        assert (out / name).is_file(), name
        assert str(out / name.split("/run")[0]) in log or name.startswith("run")
    cues = parse_srt((out / "captions" / "demo_video.srt").read_text())
    assert cues[0].start == 0.0 and cues[-1].end == 12.0 and all(a.end == b.start for a, b in zip(cues, cues[1:]))
    data = json.loads((out / "captions" / "demo_video.json").read_text())
    assert len(data["segments"]) == len(cues) and sum(len(s["parts"]) for s in data["segments"]) == 12
    assert len(list((out / "captions" / "demo_video_keyframes").iterdir())) == len(cues)
    # the trained captioner names each scene's colour, and most scenes entirely (untrained: none)
    truth = {"a blue circle on the left": 1.5, "two yellow squares at the top": 4.5,
             "a blue triangle on the right": 7.5, "a green circle at the bottom": 10.5}
    said = {cap: next(c.text for c in cues if c.start <= t < c.end) for cap, t in truth.items()}
    assert all(caption_parts(s)["colour"] == caption_parts(c)["colour"] for c, s in said.items()), said
    assert sum(caption_parts(s) == caption_parts(c) for c, s in said.items()) >= 2, said
    assert "scenes captioned correctly" in log and "clipprefix caption my_video.mp4" in log
