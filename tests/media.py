"""Test support: small video files of every awkward kind, each with its truth by construction (PyAV, numpy).

    m = write_ts(tmp_path, start=1.467)      # MPEG-TS whose first frame is at 1.467 s, 4 scenes of 1 s
    m.path, m.truth["first"], m.truth["end"], m.truth["scenes"]   # [(1.467, 2.467, 0), ...] absolute

`truth` is what the muxer was given: `first` (first frame's pts, s), `frames` (every pts), `frame_scene`
(scene index per frame), `end` (last pts + its duration), `scenes` [(start, end, k)], `display_size`
(after SAR and rotation). Scene k has the background SCENE_COLORS[k] and a white square top-left
(orientation); frames at least 128x96 carry their index as a 12-bit code across the middle; the bottom
third stays plain for subtitles. Images live in media_images.py, independent checkers in media_checks.py.
Nothing here imports clipprefix; each writer takes well under a second.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SCENE_COLORS = [(220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 200, 30),
                (200, 60, 200), (30, 200, 200), (240, 130, 20), (128, 128, 128)]
CODE_BITS = 12
TB90K = Fraction(1, 90000)
CENC_KEY = "00112233445566778899aabbccddeeff"
CENC_KID = "0123456789abcdef0123456789abcdef"


@dataclass
class Made:
    path: Path
    kind: str
    truth: dict = field(default_factory=dict)


def scene_frame(scene: int, w: int, h: int, index: int | None = None) -> np.ndarray:
    """Scene colour background, white square top-left, frame-index code across the middle."""
    a = np.empty((h, w, 3), np.uint8)
    a[:] = SCENE_COLORS[scene % len(SCENE_COLORS)]
    if w >= 8 and h >= 8:
        s = max(2, min(w, h) // 6)
        a[max(1, h // 12): max(1, h // 12) + s, max(1, w // 12): max(1, w // 12) + s] = 255
    if index is not None and w >= 128 and h >= 96:
        cell = w // (CODE_BITS + 2)
        y0, y1 = h // 2 - cell // 2, h // 2 + cell // 2
        for b in range(CODE_BITS):
            x0 = cell * (b + 1)
            a[y0:y1, x0:x0 + cell] = 255 if (index >> (CODE_BITS - 1 - b)) & 1 else 0
    return a


def _write(path: Path, frames, *, fmt: str, codec: str = "libx264", size=(320, 240), rate=25,
           codec_tb: Fraction | None = TB90K, pix_fmt: str = "yuv420p", codec_options: dict | None = None,
           format_options: dict | None = None, sar: Fraction | None = None, rotation: int = 0,
           audio_seconds: float | None = None, audio_start: float = 0.0, audio_codec: str = "aac") -> None:
    """frames: iterable of (pts in codec_tb ticks, RGB array); rotation: clockwise degrees for display."""
    w, h = size
    out = av.open(str(path), "w", format=fmt, options=dict(format_options or {}))
    try:
        opts = {"preset": "ultrafast"} if codec == "libx264" else {}
        if codec in ("libvpx", "libvpx-vp9"):
            opts = {"deadline": "realtime", "cpu-used": "8", "threads": "1"}
        opts.update(codec_options or {})
        s = out.add_stream(codec, rate=rate, options=opts)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if codec_tb is not None:
            s.time_base = codec_tb
            s.codec_context.time_base = codec_tb
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        if rotation:
            s.set_display_rotation(-rotation)          # PyAV takes counter-clockwise degrees
        a = None
        if audio_seconds:
            a = out.add_stream(audio_codec, rate=48000)
            a.layout = "mono"
        tb = s.codec_context.time_base
        for pts, arr in frames:
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            f.pts, f.time_base = int(pts), tb
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
        if a is not None:
            n = int(48000 * audio_seconds)
            pcm = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k + int(round(audio_start * 48000))   # sound starts with the picture
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    finally:
        out.close()


def _scene_video(folder, name, fmt, *, start=0.0, seconds=4.0, fps=25, scenes=4, size=(320, 240),
                 codec="libx264", tick: Fraction = TB90K, **kw) -> Made:
    path = Path(folder) / name
    n = int(round(seconds * fps))
    times = [start + i / fps for i in range(n)]
    which = [min(scenes - 1, int(i * scenes / n)) for i in range(n)]
    spans = [(start + k * seconds / scenes, start + (k + 1) * seconds / scenes, k) for k in range(scenes)]
    w, h = size
    kw.setdefault("codec_tb", tick)
    if kw.get("audio_seconds"):
        kw.setdefault("audio_start", start)
    _write(path, ((int(round(t / tick)), scene_frame(which[i], w, h, i)) for i, t in enumerate(times)),
           fmt=fmt, codec=codec, size=size, rate=fps, **kw)
    return Made(path, "video", {"first": times[0], "frames": times, "frame_scene": which, "end": times[-1] + 1 / fps,
                                "scenes": spans, "display_size": size, "rotation": 0, "fps": fps})


# ------------------------------------------------------------------ first frame not at 0
def write_ts(folder, name="offset.ts", *, start=1.467, m2ts=False, audio=False, **kw) -> Made:
    """MPEG-TS (H.264) whose first frame is at `start` s exactly; `m2ts`: 192-byte BDAV packets (.m2ts, .MTS)."""
    return _scene_video(folder, name, "mpegts", start=start, format_options={"mpegts_m2ts_mode": "1"} if m2ts else {},
                        audio_seconds=kw.get("seconds", 4.0) if audio else None, **kw)


def write_vob(folder, name="VTS_01_1.vob", *, fmt="vob", seconds=4.0, scenes=4) -> Made:
    """MPEG-PS (MPEG-2; 'mpeg' -> MPEG-1). The PS muxer's preload puts the first frame at about 0.54 s and
    its header says a frame less than the frames run: the truth is read back from the first packets."""
    codec = "mpeg1video" if fmt == "mpeg" else "mpeg2video"
    m = _scene_video(folder, name, fmt, seconds=seconds, fps=25, scenes=scenes, size=(352, 288), codec=codec,
                     tick=Fraction(1, 25))
    with av.open(str(m.path)) as c:
        st = c.streams.video[0]
        shift = float(min(p.pts for _, p in zip(range(16), c.demux(st)) if p.pts is not None) * st.time_base)
    t = m.truth
    t["frames"] = [x + shift for x in t["frames"]]
    t["scenes"] = [(a + shift, b + shift, k) for a, b, k in t["scenes"]]
    t["first"], t["end"] = t["frames"][0], t["end"] + shift
    return m


def write_edited_mp4(folder, name="edited.mp4", *, start=0.5, **kw) -> Made:
    """An MP4 whose first frame is at `start` s (the mov muxer writes an empty edit, as stream-copy cuts do)."""
    return _scene_video(folder, name, "mp4", start=start, **kw)


def write_mp4(folder, name="plain.mp4", *, audio=False, seconds=4.0, fmt="mp4", **kw) -> Made:
    """A plain constant-rate MP4 (or `fmt`: mov, matroska), optionally with a sine track (`audio_codec`)."""
    m = _scene_video(folder, name, fmt, seconds=seconds, audio_seconds=seconds if audio else None, **kw)
    m.truth["audio"] = bool(audio)
    return m


# ------------------------------------------------------------------ timing oddities
def _mp4_boxes(buf, start, end, path=()):
    i = start
    while i + 8 <= end:
        size, typ = struct.unpack(">I4s", buf[i:i + 8])
        typ, hdr = typ.decode("latin1"), 8
        if size == 1:
            size, hdr = struct.unpack(">Q", buf[i + 8:i + 16])[0], 16
        if size == 0:
            size = end - i
        if size < hdr:
            return
        yield path + (typ,), i, hdr, size
        if typ in ("moov", "trak", "mdia", "minf", "stbl", "edts", "sinf", "schi"):
            yield from _mp4_boxes(buf, i + hdr, i + size, path + (typ,))
        elif typ == "stsd":
            yield from _mp4_boxes(buf, i + hdr + 8, i + size, path + (typ,))
        elif typ in ("avc1", "encv"):
            yield from _mp4_boxes(buf, i + hdr + 78, i + size, path + (typ,))
        i += size


def mp4_boxes(path) -> list[tuple[tuple[str, ...], int, int, int]]:
    """(box path, offset, header size, size) of every box of an MP4 (moov descended)."""
    b = Path(path).read_bytes()
    return list(_mp4_boxes(b, 0, len(b)))


def write_vfr_mp4(folder, name="vfr.mp4", *, header_short_by: float | None = 0.16, n=96, scenes=4) -> Made:
    """Variable frame rate (gaps 33-200 ms, B-frames) whose media header (mdhd) duration is
    `header_short_by` s shorter than its frames run, as on phone clips (None: an honest header)."""
    gaps = np.random.default_rng(0).choice([0.033, 0.05, 0.1, 0.2], n)
    times = [0.0] + list(np.round(np.cumsum(gaps)[:-1], 3))
    path = Path(folder) / name
    which = [min(scenes - 1, int(i * scenes / n)) for i in range(n)]
    _write(path, ((int(round(t * 90000)), scene_frame(which[i], 160, 120, i)) for i, t in enumerate(times)),
           fmt="mp4", size=(160, 120), rate=30, codec_options={"preset": "veryfast", "bf": "2"})
    b = bytearray(path.read_bytes())
    o, hd = next((o, hd) for p, o, hd, _ in _mp4_boxes(b, 0, len(b)) if p[-1] == "mdhd")
    o += hd
    fmt, (scale_off, dur_off) = (">I", (o + 12, o + 16)) if b[o] == 0 else (">Q", (o + 20, o + 24))
    scale = struct.unpack(">I", b[scale_off:scale_off + 4])[0]
    true_end = struct.unpack_from(fmt, b, dur_off)[0] / scale     # the muxer's own: last pts + its duration
    header = true_end
    if header_short_by is not None:
        header = true_end - header_short_by
        struct.pack_into(fmt, b, dur_off, int(round(header * scale)))
        path.write_bytes(bytes(b))
    return Made(path, "video", {"first": 0.0, "frames": times, "frame_scene": which, "end": true_end,
                                "header_duration": header, "display_size": (160, 120), "rotation": 0})


def ebml_has_duration(data: bytes) -> bool:
    """Whether a Matroska Segment Info holds a Duration (ID 0x4489) element."""
    i = data.find(b"\x15\x49\xa9\x66")            # Info
    if i < 0:
        return False
    n = 8 - data[i + 4].bit_length() + 1
    size = int.from_bytes(data[i + 4:i + 4 + n], "big") & ((1 << (7 * n)) - 1)
    return b"\x44\x89" in data[i + 4 + n: i + 4 + n + size]


def write_webm_no_duration(folder, name="recording.webm", *, codec="libvpx", seconds=3.0, fps=30, scenes=3) -> Made:
    """WebM as MediaRecorder writes it: no Duration and no Cues (the matroska muxer's `live=1`).
    `codec`: libvpx (VP8) or libvpx-vp9."""
    m = _scene_video(folder, name, "webm", seconds=seconds, fps=fps, scenes=scenes, size=(160, 120), codec=codec,
                     tick=Fraction(1, 1000), format_options={"live": "1"})
    m.truth["has_duration_element"] = ebml_has_duration(m.path.read_bytes()[:1 << 16])
    return m


def write_anamorphic(folder, name="anamorphic.mp4", *, fmt="mp4", seconds=2.0, scenes=2) -> Made:
    """480x360 coded with SAR 4:3 (H.264 VUI + pasp): displayed 640x360 (16:9)."""
    m = _scene_video(folder, name, fmt, seconds=seconds, scenes=scenes, size=(480, 360), sar=Fraction(4, 3),
                     tick=TB90K if fmt != "matroska" else Fraction(1, 1000))
    m.truth.update(display_size=(640, 360), coded_size=(480, 360))
    return m


# ------------------------------------------------------------------ tiny, degenerate, protected
def write_one_frame(folder, name="one_frame.mp4", *, size=(64, 48), scene=1) -> Made:
    path = Path(folder) / name
    _write(path, [(0, scene_frame(scene, *size))], fmt="mp4", size=size)
    return Made(path, "video", {"first": 0.0, "frames": [0.0], "frame_scene": [scene], "end": 1 / 25,
                                "display_size": size, "rotation": 0})


def write_thin(folder, name=None, *, size=(1, 64), seconds=1.0, scenes=2) -> Made:
    """A 1-pixel-wide (or 1x1) H.264 video (yuv444p: 4:2:0 needs even sizes)."""
    return _scene_video(folder, name or f"thin_{size[0]}x{size[1]}.mp4", "mp4", seconds=seconds, scenes=scenes,
                        size=size, pix_fmt="yuv444p")


def write_encrypted_mp4(folder, name="encrypted.mp4") -> Made:
    """CENC (cenc-aes-ctr) MP4 written by the mov muxer; without its key the frames do not decode."""
    m = _scene_video(folder, name, "mp4", seconds=2.0, scenes=2, size=(160, 120),
                     format_options={"encryption_scheme": "cenc-aes-ctr", "encryption_key": CENC_KEY,
                                     "encryption_kid": CENC_KID})
    m.truth.update(encrypted=True, key=CENC_KEY)
    return m


def write_ogv(folder, name="clip.ogv", *, theora: bool = False, seconds=2.0, scenes=2) -> Made | None:
    """Ogg video: VP8 through PyAV, or Theora (PyAV cannot encode it) through a system `ffmpeg`; None without one."""
    if not theora:
        return _scene_video(folder, name, "ogg", seconds=seconds, scenes=scenes, size=(160, 120), codec="libvpx",
                            tick=Fraction(1, 25))
    ff = shutil.which("ffmpeg")
    if not ff:
        return None
    src = _scene_video(folder, name + ".mkv", "matroska", seconds=seconds, scenes=scenes, size=(160, 120),
                       tick=Fraction(1, 1000))
    path = Path(folder) / name
    subprocess.run([ff, "-v", "error", "-y", "-i", str(src.path), "-c:v", "libtheora", "-q:v", "7", str(path)],
                   check=True, capture_output=True)
    src.path.unlink()
    return Made(path, "video", src.truth)


def write_mkv(folder, name="clip.mkv", **kw) -> Made:
    return _scene_video(folder, name, "matroska", tick=Fraction(1, 1000), **kw)
