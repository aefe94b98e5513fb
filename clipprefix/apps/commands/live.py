"""Real-time captions for a webcam, a video file played at its own speed, or a stream.

    clipprefix live                                     # webcam 0, window with caption + FPS overlay
    clipprefix live --source clip.mp4 --headless        # prints "[00:00:02.000] a red circle ..." lines
    clipprefix live --source rtsp://host/stream --srt session.srt

OpenCV reads frames on the main thread and shows them at once; a worker thread captions the newest
frame whenever it is free (frames that arrive meanwhile are simply not captioned), so the display
never waits for the model. A video checkpoint reads its last `frames.n` frames, spread over the last
`--clip-seconds`. When the session ends (end of stream, Ctrl-C, the camera unplugged, `q` in the
window) the captions are saved as SRT, timed by the frames they describe, and the caption refresh
rate and lag (frame read -> caption ready) are reported.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ...base.errors import ClipPrefixError
from ..live import LiveCaption, close_windows, open_source, run_session, session_cues, window
from ..options import DEFAULT_MODEL, add_decoding_args, add_dtype_arg, check_writable, decoding_overrides, load_captioner
from ..subtitles import clean, srt_time, write_subtitles

HELP = "real-time captions from a webcam, file or stream"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset, checkpoint folder or Hub id (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="cpu")
    add_dtype_arg(p)
    p.add_argument("--headless", action="store_true", help="print timestamped captions instead of opening a window")
    p.add_argument("--srt", metavar="PATH",
                   help="where to save the session's SRT (default: <stem>_captions/<stem>.live.srt next to a file "
                        "source, else clipprefix-live/<time>.srt)")
    p.add_argument("--speed", type=float, default=1.0, help="play files this many times faster than real time")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    p.add_argument("--clip-seconds", type=float, default=2.0, help="time span a video checkpoint reads (default 2)")
    add_decoding_args(p)


def _default_srt(source: str) -> Path:
    p = Path(source).expanduser()
    if not source.strip().isdigit() and "://" not in source and p.exists():
        return p.parent / f"{p.stem}_captions" / f"{p.stem}.live.srt"
    return Path("clipprefix-live") / time.strftime("live-%Y%m%d-%H%M%S.srt")


def run(args) -> int:
    for name in ("speed", "clip_seconds"):
        if not getattr(args, name) > 0:
            raise ClipPrefixError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}.")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise ClipPrefixError(f"--max-seconds must be positive, got {args.max_seconds}.")
    srt = Path(args.srt) if args.srt else _default_srt(args.source)
    if srt.suffix.lower() != ".srt":
        raise ClipPrefixError(f"--srt must name a .srt file, got {srt}.")
    check_writable(srt.parent, "SRT folder")
    frames = open_source(args.source, speed=args.speed)      # fails early for a bad source
    captioner = load_captioner(args.model, args.device, args.dtype)
    gen = captioner.generation.updated(**decoding_overrides(args)).validate()
    show = None if args.headless else window("clipprefix live")
    if show is None and not args.headless:
        print("clipprefix live: no window can be opened here (headless OpenCV or no display); "
              "printing captions instead.", file=sys.stderr)

    last = [None]

    def printer(c: LiveCaption) -> None:   # a line when the caption changes; the SRT keeps every refresh
        if c.text != last[0]:
            print(f"[{srt_time(c.time).replace(',', '.')}] {clean(c.text)}  (lag {c.lag:.2f} s)", flush=True)
            last[0] = c.text

    result = run_session(captioner, frames, generation=gen, on_caption=printer if show is None else None,
                         show=show, max_seconds=args.max_seconds, clip_seconds=args.clip_seconds)
    if show is not None:
        close_windows()
    if result.reason == "end of stream" and args.source.strip().isdigit():
        result.reason = "the camera stopped delivering frames"
    result.cues = session_cues(result)
    if result.cues:
        result.srt = write_subtitles(result.cues, srt.parent, srt.name[:-4], formats=("srt",))["srt"]
        print(f"clipprefix live: {result.summary()}; saved {result.srt}", file=sys.stderr)
    else:
        print(f"clipprefix live: {result.summary()}; no caption was finished, so no SRT was written.", file=sys.stderr)
    if result.error is not None:
        raise result.error
    return 0
