"""Frame sampling: true timestamps, the frame on screen at each target, rotation, scenes, bad files."""
from __future__ import annotations

import bisect
import inspect
import shutil
import threading

import av
import numpy as np
import pytest
from PIL import Image

from clipprefix import synthetic as S
from clipprefix.data import video as V
from clipprefix.base.errors import ClipPrefixError


def _counter_frames(n: int, w: int = 64, h: int = 48):
    """Frame i shows a bar at x = 2i and a corner patch of brightness 5i (mod 256): every frame differs."""
    for i in range(n):
        a = np.full((h, w, 3), 40, np.uint8)
        a[:, (2 * i) % w:(2 * i) % w + 2] = 255
        a[:8, :8] = (5 * i) % 256
        yield a


def _reference(path):
    """Brute force: every frame's time and pixels, decoded with plain PyAV."""
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def _assert_on_screen(frames, ref):
    times = [t for t, _ in ref]
    for f in frames:
        k = max(0, bisect.bisect_right(times, f.target + 1e-9) - 1)   # last frame with pts <= target
        assert f.time == pytest.approx(times[k], abs=1e-9), (f.target, f.time, times[k])
        assert np.array_equal(f.image, ref[k][1]), f.target


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 s at 15 fps, a keyframe every 15 frames, B-frames: seeking and skipping both get exercised."""
    p = tmp_path_factory.mktemp("v") / "clip.mp4"
    S.write_mp4(p, _counter_frames(150), 15, options={"g": "15", "bf": "3"})
    return p


@pytest.fixture(scope="module")
def open_gop(tmp_path_factory):
    """Open GOPs: B-frames before a keyframe (in display order) reference the previous GOP."""
    p = tmp_path_factory.mktemp("v") / "open_gop.mp4"
    S.write_mp4(p, _counter_frames(120), 15, options={"x264-params": "open-gop=1:keyint=15"})
    return p


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    """Variable frame rate: gaps of 20-250 ms."""
    rng = np.random.default_rng(0)
    gaps = rng.choice([0.02, 0.05, 0.1, 0.25], size=90)
    pts = list(np.round(np.concatenate([[0.0], np.cumsum(gaps)[:-1]]), 3))
    p = tmp_path_factory.mktemp("v") / "vfr.mp4"
    S.write_mp4(p, _counter_frames(90), 10, pts=pts)
    return p, pts


def test_probe(clip):
    info = V.probe(clip)
    assert (info.width, info.height, info.rotation, info.codec) == (64, 48, 0, "h264")
    assert info.fps == pytest.approx(15) and info.frame_count == 150
    assert info.duration == pytest.approx(10.0) and info.start == 0.0


def test_uniform_takes_segment_centres(clip):
    frames = list(V.sample(clip, V.uniform(4)))
    assert [f.target for f in frames] == pytest.approx([1.25, 3.75, 6.25, 8.75])
    assert [f.span for f in frames] == [pytest.approx((i * 2.5, (i + 1) * 2.5)) for i in range(4)]
    for f in frames:   # the frame on screen: at or before the target, within one frame
        assert 0 <= f.target - f.time < 1 / 15 + 1e-9
    assert frames[0].time > 0   # never the (often black) first frame
    _assert_on_screen(frames, _reference(clip))


def test_every_and_fps(clip):
    frames = list(V.sample(clip, "every:2"))
    assert [f.target for f in frames] == pytest.approx([1, 3, 5, 7, 9])
    assert [f.time for f in frames] == pytest.approx([1, 3, 5, 7, 9])   # frames lie exactly on those times
    assert len(list(V.sample(clip, V.fps(2)))) == 20
    assert len(list(V.sample(clip, "fps:30", max_frames=7))) == 7


@pytest.mark.parametrize("seed", range(4))
def test_random_targets_match_brute_force(clip, vfr, open_gop, seed):
    rng = np.random.default_rng(seed)
    for path in (clip, vfr[0], open_gop):
        ref = _reference(path)
        times = list(rng.uniform(-0.3, ref[-1][0] + 0.5, size=int(rng.integers(1, 40))))
        frames = list(V.frames_at(path, times))
        assert sorted(times) == [f.target for f in frames]
        _assert_on_screen(frames, ref)


def test_vfr_timestamps_are_the_written_ones(vfr):
    path, pts = vfr
    frames = list(V.sample(path, "uniform:12"))
    for f in frames:
        k = bisect.bisect_right(pts, f.target + 1e-9) - 1
        assert f.time == pytest.approx(pts[k], abs=1e-3)


def test_seeks_only_across_keyframes_and_skips_unneeded_frames(clip, monkeypatch):
    seeks, decoded = [], []
    orig_seek = V.VideoReader.seek
    monkeypatch.setattr(V.VideoReader, "seek", lambda self, pts: (seeks.append(pts), orig_seek(self, pts))[1])
    orig_next = V.VideoReader._next
    monkeypatch.setattr(V.VideoReader, "_next", lambda self: (lambda f: (decoded.append(f), f)[1])(orig_next(self)))
    list(V.frames_at(clip, [0.2, 0.4, 0.6], workers=1))     # all in the first GOP: decode on, no seek
    assert seeks == []
    list(V.frames_at(clip, [0.5, 5.5, 9.5], workers=1))     # keyframes lie between: one seek per far target
    assert len(seeks) == 2
    # non-reference frames before a target are never decoded: far fewer than the 143 frames up to 9.5 s
    assert len([f for f in decoded if f is not None]) < 90


def test_sample_is_a_generator(clip):
    assert inspect.isgenerator(V.sample(clip, "uniform:2"))
    assert inspect.isgenerator(V.iter_frames(clip))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied(tmp_path, rotation):
    a = np.zeros((48, 64, 3), np.uint8)
    a[:12, :12] = 255   # marker top-left in the stored frame
    p = S.write_mp4(tmp_path / f"rot{rotation}.mp4", [a] * 5, 10, rotation=rotation)
    info = V.probe(p)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))
    img = next(V.sample(p, "uniform:1")).image
    assert img.shape[:2] == (info.height, info.width)
    ys, xs = np.nonzero(img[..., 0] > 128)
    corner = ("top" if ys.mean() < img.shape[0] / 2 else "bottom", "left" if xs.mean() < img.shape[1] / 2 else "right")
    # turned clockwise by `rotation`: top-left goes to top-right (90), bottom-right (180), bottom-left (270)
    assert corner == {90: ("top", "right"), 180: ("bottom", "right"), 270: ("bottom", "left")}[rotation]


def test_scenes(tmp_path):
    v = S.make_video(tmp_path / "scenes.mp4", seed=1, n_scenes=4, scene_seconds=1.5, fps=10)
    spans = V.detect_scenes(v.path)
    assert len(spans) == 4
    for (a, _), truth in zip(spans[1:], v.boundaries):
        assert abs(a - truth) <= 0.1 + 1e-9   # within one frame
    frames = list(V.sample(v.path, V.scenes()))
    assert len(frames) == 4 and all(s.start < f.time < s.end for f, s in zip(frames, v.scenes))


def test_parse_policy():
    assert str(V.parse_policy("uniform:16")) == "uniform:16"
    assert str(V.parse_policy("fps:2")) == "every:0.5"
    assert str(V.parse_policy("every:2s")) == "every:2"
    assert str(V.parse_policy("scenes")) == "scenes:0.1" and str(V.parse_policy("scenes:0.2:1")) == "scenes:0.2:1"
    for bad in ("uniform", "uniform:0", "every:-1", "sometimes:3", "scenes:2"):
        with pytest.raises(ClipPrefixError):
            V.parse_policy(bad)


# ------------------------------------------------------------------ bad files
def _bad_files(d, good):
    """name -> (path, words the message must contain)."""
    out = {}
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = (d / "empty.mp4", "empty")
    with av.open(str(d / "audio.mp4"), "w") as o:
        s = o.add_stream("aac", rate=16000)
        for i in range(10):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            for pk in s.encode(fr):
                o.mux(pk)
        for pk in s.encode():
            o.mux(pk)
    out["audio"] = (d / "audio.mp4", "audio only")
    Image.new("RGB", (32, 32), "red").save(d / "img.png")
    shutil.copy(d / "img.png", d / "png.mp4")
    out["png"] = (d / "png.mp4", "image")
    Image.new("RGB", (32, 32), "red").save(d / "img.jpg")
    shutil.copy(d / "img.jpg", d / "jpeg.mp4")
    out["jpeg"] = (d / "jpeg.mp4", "image")
    data = good.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])   # index at the end: gone
    out["cut"] = (d / "cut.mp4", "truncated")
    fast = S.write_mp4(d / "fast.mp4", _counter_frames(60), 10, faststart=True)
    fdata = fast.read_bytes()
    (d / "cutfast.mp4").write_bytes(fdata[: len(fdata) * 2 // 3])   # index first, data cut off
    out["cutfast"] = (d / "cutfast.mp4", "truncated")
    clean = S.write_mp4(d / "clean.mp4", _counter_frames(60), 10, faststart=True, options={"bf": "0"})
    with av.open(str(clean)) as c:
        ends = [pk.pos + pk.size for pk in c.demux(video=0) if pk.size]
    (d / "cutclean.mp4").write_bytes(clean.read_bytes()[:ends[30]])   # cut between two packets: a clean EOF
    out["cutclean"] = (d / "cutclean.mp4", "truncated: frames stop at 3.00 s of 6.00 s")
    b = bytearray(data)
    b[len(b) // 2:len(b) // 2 + 400] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    (d / "corrupt.mp4").write_bytes(bytes(b))
    out["corrupt"] = (d / "corrupt.mp4", "corrupt")
    (d / "noise.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out["noise"] = (d / "noise.mp4", "cannot be opened")
    out["missing"] = (d / "missing.mp4", "does not exist")
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = S.write_mp4(d / "good.mp4", _counter_frames(60), 10, options={"g": "10"})
    return _bad_files(d, good)


@pytest.mark.parametrize("name", ["empty", "audio", "png", "jpeg", "cut", "cutfast", "cutclean", "corrupt",
                                  "noise", "missing"])
def test_bad_files_raise_naming_file_and_reason(bad_files, name):
    path, reason = bad_files[name]
    box = {}

    def run():   # in a thread so that a hang fails the test instead of stalling the suite
        try:
            V.probe(path)
            list(V.sample(path, "fps:10"))
        except ClipPrefixError as e:
            box["err"] = str(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), f"{name}: decoding hung"
    assert "err" in box, f"{name}: no error raised"
    assert str(path) in box["err"] and reason in box["err"], box["err"]


def test_concealed_damage_is_refused_but_stays_local(tmp_path):
    """The decoder hides a broken keyframe (no exception); frames decoded from it are refused, frames
    before it are still fine."""
    good = S.write_mp4(tmp_path / "good.mp4", _counter_frames(60), 10, options={"g": "10"})
    with av.open(str(good)) as c:
        keys = [(float(pk.pts * pk.time_base), pk.pos, pk.size) for pk in c.demux(video=0)
                if pk.size and pk.is_keyframe and pk.pts * pk.time_base > 1.5]
    t, pos, size = keys[0]
    b = bytearray(good.read_bytes())
    b[pos + size // 2:pos + size // 2 + 8] = b"\xff" * 8
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(b))
    with pytest.raises(ClipPrefixError, match=rf"damaged\.mp4 is corrupt: the frame at {t:.3f} s is damaged"):
        list(V.sample(bad, "fps:10"))
    early = list(V.frames_at(bad, [0.2, t - 0.25]))
    _assert_on_screen(early, _reference(good))


def test_parallel_runs_give_the_same_frames(clip):
    times = list(np.linspace(0.1, 9.9, 23))
    one = list(V.frames_at(clip, times, workers=1))
    three = list(V.frames_at(clip, times, workers=3))
    assert [f.time for f in one] == [f.time for f in three]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(one, three))
    assert [f.span for f in V.sample(clip, "uniform:5", workers=2)] == [f.span for f in V.sample(clip, "uniform:5", workers=1)]


_MEMORY_PROBE = """
import json, sys
import numpy as np
from clipprefix.data import video as V

def rss():
    with open("/proc/self/statm") as f:                  # Linux (CI): resident pages
        return int(f.read().split()[1]) * 4096

def growth(frames, keep=False):
    base, peak, count, kept = rss(), 0, 0, []
    for f in frames:
        count += 1
        if keep:
            kept.append(f)
        if count % 100 == 0:
            peak = max(peak, rss() - base)
    return count, peak

path = sys.argv[1]
out = {"warm-up": growth(V.iter_frames(path))}            # the decoder and allocator settle
out["iter_frames"] = growth(V.iter_frames(path))
out["sample fps:2"] = growth(V.sample(path, "fps:2", max_frames=5000))
base = rss()
out["scenes"] = (len(V.detect_scenes(path)), rss() - base)
out["holding every frame"] = growth(V.iter_frames(path), keep=True)
print(json.dumps(out))
"""


def test_a_long_video_streams_in_bounded_memory(tmp_path):
    """A 10-minute clip (3000 frames of 160x120), in a fresh process: walking every frame, sampling 1200
    of them and scene detection each keep the resident memory flat, while holding the frames adds
    3000 x 57.6 kB = 173 MB (so the measure can fail); a 2-hour 1080p file would not fit at all."""
    import json
    import subprocess
    import sys

    w, h, n, fps = 160, 120, 3000, 5
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (h, 2 * w, 3), dtype=np.uint8)
    path = S.write_mp4(tmp_path / "long.mp4", (np.roll(tex, 3 * i, axis=1)[:, :w] for i in range(n)), fps,
                       options={"preset": "ultrafast"})
    res = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["iter_frames"][0] == n and got["sample fps:2"][0] == 1200 and got["scenes"][0] == 1
    for name in ("iter_frames", "sample fps:2", "scenes"):
        assert got[name][1] < 40e6, (name, got[name][1] / 1e6)   # MB: decoder buffers and allocator slack only
    assert got["holding every frame"][1] > 120e6, got
