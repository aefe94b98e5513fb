"""Video -> segments -> captions -> cues: segment boundaries, frames read, merging, files written."""
import json

import pytest

from clipprefix import synthetic
from clipprefix.data import video
from clipprefix.apps.options import load_captioner
from clipprefix.core.captioner import Caption
from clipprefix.apps.subtitles import parse_srt
from clipprefix.apps.video_captions import caption_video, segment_spans


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 scenes of 1.5 s at 12 fps, 160x120: cuts at 1.5, 3.0 and 4.5 s."""
    return synthetic.make_video(tmp_path_factory.mktemp("vc") / "scenes.mp4", n_scenes=4, scene_seconds=1.5, fps=12)


@pytest.fixture(scope="module")
def tiny():
    return load_captioner("tiny")


class Scripted:
    """The tiny captioner with scripted captions, one per segment in order (to pin merging)."""

    def __init__(self, real, texts):
        self.real, self.texts, self.calls = real, list(texts), []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def caption_features(self, feats, generation=None, **kw):
        self.calls.append(tuple(feats.shape))
        out = [Caption(self.texts.pop(0), [], [], -0.1 * i) for i in range(feats.shape[0])]
        return out


def test_scene_segments_follow_the_cuts_and_tile(clip, tiny):
    r = caption_video(tiny, clip.path, "scenes:0.1", merge=None, progress=False)
    starts = [s.start for s in r.segments]
    assert len(r.segments) == 4
    assert starts[0] == 0.0 and all(abs(a - b) <= 1 / 12 + 1e-6 for a, b in zip(starts[1:], clip.boundaries))
    assert r.segments[-1].end == pytest.approx(clip.duration, abs=1e-3)
    for a, b in zip(r.cues, r.cues[1:]):
        assert a.end == b.start
    assert all(len(s.frames) == 1 and s.start <= s.frames[0] < s.end for s in r.segments)


def test_image_checkpoint_reads_each_segments_middle_frame(clip, tiny):
    r = caption_video(tiny, clip.path, "uniform:6", merge=None, progress=False)
    assert len(r.segments) == 6 and r.frames_per_segment == 1
    for s in r.segments:
        assert abs(s.frames[0] - (s.start + s.end) / 2) <= 1 / 12 + 1e-6


def test_video_checkpoint_reads_ordered_frames_across_each_segment(clip):
    cap = load_captioner("tiny-video")
    r = caption_video(cap, clip.path, "uniform:3", merge=None, progress=False)
    assert r.frames_per_segment == cap.config["frames"]["n"] == 8
    for s in r.segments:
        assert len(s.frames) == 8 and s.frames == sorted(s.frames)
        assert s.start - 1e-6 <= s.frames[0] and s.frames[-1] < s.end and s.frames[-1] - s.frames[0] >= 1.0


def test_batches_equal_one_by_one(clip, tiny):
    a = caption_video(tiny, clip.path, "uniform:6", merge=None, batch_size=32, progress=False)
    b = caption_video(tiny, clip.path, "uniform:6", merge=None, batch_size=1, progress=False, thumbnails=False)
    assert [s.text for s in a.segments] == [s.text for s in b.segments]
    assert len(a.thumbnails) == 6 and b.thumbnails == [] and "<img" not in b._repr_html_()
    assert [s.frames for s in a.segments] == [s.frames for s in b.segments]


def test_near_identical_consecutive_captions_merge(clip, tiny, tmp_path):
    texts = ["a red circle on the left", "A red circle on the left.", "a red circle on the left",
             "two blue squares at the top", "two blue squares at the top", "a red circle on the left"]
    s = Scripted(tiny, texts)
    r = caption_video(s, clip.path, "uniform:6", progress=False, batch_size=4)
    assert s.calls == [(4, 1, 128), (2, 1, 128)]                  # batches of segments, one frame each
    assert [(c.start, c.end, c.text) for c in r.cues] == [(0.0, 3.0, "a red circle on the left"),
                                                          (3.0, 5.0, "two blue squares at the top"),
                                                          (5.0, 6.0, "a red circle on the left")]
    written = r.write(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scenes.json", "scenes.srt", "scenes.vtt"]
    srt = parse_srt(written["srt"].read_text())
    assert [(c.start, c.end) for c in srt] == [(0.0, 3.0), (3.0, 5.0), (5.0, 6.0)]
    data = json.loads(written["json"].read_text())
    seg = data["segments"][0]
    assert (seg["start"], seg["end"], seg["start_srt"], seg["end_srt"]) == (0.0, 3.0, "00:00:00,000", "00:00:03,000")
    assert len(seg["frames"]) == 3 and len(seg["parts"]) == 3 and data["segmentation"] == "uniform:6"


def test_a_short_tail_joins_the_previous_segment(clip):
    spans = segment_spans(clip.path, "every:2.5")              # 6 s: 0-2.5, 2.5-5, and a 1 s tail
    assert spans == [(0.0, 2.5), (2.5, 6.0)]
    assert segment_spans(clip.path, "every:2") == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]


def test_keyframes_and_preview(clip, tiny, tmp_path):
    r = caption_video(tiny, clip.path, "scenes", merge=None, progress=False)
    out = r.write(tmp_path, keyframes=True, preview=True, progress=False)
    frames = sorted(out["keyframes"].iterdir())
    assert len(frames) == len(r.cues) and frames[0].name.startswith("0001_00-00-00.000")
    src, prev = video.probe(clip.path), video.probe(out["preview"])
    assert (prev.width, prev.height) == (src.width, src.height)
    assert prev.frame_count == src.frame_count and prev.duration == pytest.approx(src.duration, abs=0.05)
    mid = next(video.frames_at(out["preview"], [0.7]))
    orig = next(video.frames_at(clip.path, [0.7]))
    assert (abs(mid.image[:60].astype(int) - orig.image[:60]).mean() < 4      # top: the picture
            and abs(mid.image[-15:].astype(int) - orig.image[-15:]).mean() > 10)  # bottom: the caption box
    assert "<table>" in r._repr_html_()
