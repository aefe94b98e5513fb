"""`clipprefix live`: asynchronous captions on the newest frame, real-time playback, SRT on exit."""
import re
import threading
import time

import numpy as np
import pytest

from clipprefix import synthetic
from clipprefix.apps import cli
from clipprefix.apps.options import load_captioner
from clipprefix.apps.live import CaptionWorker, open_source, run_session, session_cues
from clipprefix.apps.subtitles import parse_srt


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synthetic.make_video(tmp_path_factory.mktemp("live") / "cam.mp4", n_scenes=3, scene_seconds=1.0, fps=15)


def test_headless_file_session_prints_captions_and_saves_srt(clip, tmp_path, capsys):
    srt = tmp_path / "s" / "session.srt"
    t0 = time.perf_counter()
    rc = cli.main(["live", "--headless", "--source", str(clip.path), "--model", "tiny", "--speed", "2",
                   "--srt", str(srt)])
    wall = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines and all(re.match(r"^\[\d\d:\d\d:\d\d\.\d{3}\] .* \(lag \d+\.\d\d s\)$", line) for line in lines)
    assert wall >= clip.duration / 2 * 0.9                    # played at (twice) its own speed, not as fast as possible
    m = re.search(r"(\d+) frames at [\d.]+ fps, (\d+) captions \(([\d.]+)/s\), lag mean ([\d.]+) s", err)
    assert m and int(m.group(1)) == 45 and int(m.group(2)) >= 2 and "end of stream" in err
    cues = parse_srt(srt.read_text())
    assert cues and cues[-1].end == pytest.approx(clip.duration, abs=0.002)
    assert all(a.end == b.start for a, b in zip(cues, cues[1:]))
    assert sorted(p.name for p in srt.parent.iterdir()) == ["session.srt"]


def test_default_srt_goes_into_a_folder_next_to_the_file(clip, capsys):
    rc = cli.main(["live", "--headless", "--source", str(clip.path), "--model", "tiny", "--speed", "6"])
    capsys.readouterr()
    folder = clip.path.parent / "cam_captions"
    assert rc == 0 and [p.name for p in folder.iterdir()] == ["cam.live.srt"]


def test_captions_follow_the_newest_frame_and_never_block_display(clip):
    cap = load_captioner("tiny")
    slow = threading.Event()

    class Slow:
        """Captioning that takes 0.3 s: the display loop must keep going meanwhile."""
        def __getattr__(self, k):
            return getattr(cap, k)

        def caption_features(self, feats, gen=None, **kw):
            if slow.is_set():
                time.sleep(0.3)
            return cap.caption_features(feats, gen, **kw)

    frames = [(np.full((48, 64, 3), i, np.uint8), i / 30) for i in range(60)]

    def paced():
        for f in frames:
            time.sleep(1 / 30)
            yield f

    slow.set()
    shown = []
    r = run_session(Slow(), paced(), show=lambda fr, c, fps: shown.append(time.perf_counter()) or True, warmup=False)
    gaps = np.diff(shown)
    assert r.frames == 60 and gaps.max() < 0.15                  # the display never waited 0.3 s for the model
    assert 3 <= len(r.captions) <= 9                              # ~2 s / 0.3 s: frames in between are skipped
    times = [c.time for c in r.captions]
    assert times == sorted(times) and all(c.lag >= 0.29 for c in r.captions)
    assert times[1] - times[0] >= 0.25                            # the next caption read the newest frame


def test_ctrl_c_ends_the_session_and_keeps_the_captions():
    cap = load_captioner("tiny")

    def frames():
        for i in range(10):
            time.sleep(0.05)
            yield np.full((48, 64, 3), 20 * i, np.uint8), i * 0.05
        raise KeyboardInterrupt

    r = run_session(cap, frames())
    assert r.reason == "interrupted" and r.frames == 10 and r.captions
    cues = session_cues(r)
    assert cues[0].start == r.captions[0].time and cues[-1].end == pytest.approx(0.5)


def test_worker_reports_failures():
    class Broken:
        def encode_images(self, frames):
            raise RuntimeError("model exploded")

    w = CaptionWorker(Broken(), None)
    w.offer([np.zeros((8, 8, 3), np.uint8)], 0.0, time.perf_counter())
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="exploded"):
        w.poll()
    w.close()


def test_a_failing_model_still_saves_the_session_srt(clip, tmp_path, monkeypatch, capsys):
    """The model breaks after a few captions: the SRT of what was captioned is written, then the error surfaces."""
    from clipprefix.core.captioner import Captioner

    real, calls = Captioner.caption_features, [0]

    def breaks_on_the_fourth(self, *a, **kw):
        calls[0] += 1
        if calls[0] >= 4:                         # call 1 is the warm-up, 2 and 3 are real captions
            raise RuntimeError("GPU fell off the bus")
        return real(self, *a, **kw)

    monkeypatch.setattr(Captioner, "caption_features", breaks_on_the_fourth)
    srt = tmp_path / "broken.srt"
    with pytest.raises(RuntimeError, match="fell off the bus"):
        cli.main(["live", "--headless", "--source", str(clip.path), "--model", "tiny", "--speed", "3",
                  "--srt", str(srt)])
    err = capsys.readouterr().err
    assert "stopped by an error (RuntimeError: GPU fell off the bus)" in err and f"saved {srt}" in err
    cues = parse_srt(srt.read_text())
    assert 1 <= len(cues) <= 2 and cues[0].text


def test_files_play_at_their_own_speed(clip):
    t0 = time.perf_counter()
    stamps = [t for _, t in open_source(str(clip.path), speed=3.0)]
    wall = time.perf_counter() - t0
    assert len(stamps) == 45 and stamps == sorted(stamps)
    assert wall == pytest.approx(stamps[-1] / 3, abs=0.25)


def test_an_unplugged_camera_ends_the_stream_after_a_second():
    from clipprefix.apps.live import CAMERA_RETRIES_S, _read

    class Camera:
        """Three frames, then nothing: the cable was pulled."""
        def __init__(self):
            self.left, self.released = 3, False

        def read(self):
            if self.left:
                self.left -= 1
                return True, np.zeros((4, 4, 3), np.uint8)
            return False, None

        def release(self):
            self.released = True

    cam = Camera()
    t0 = time.perf_counter()
    got = list(_read(cam, "camera", False, 1.0))
    waited = time.perf_counter() - t0
    assert len(got) == 3 and [t for _, t in got] == sorted(t for _, t in got)
    assert CAMERA_RETRIES_S <= waited < CAMERA_RETRIES_S + 1 and cam.released
