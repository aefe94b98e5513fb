"""Caption images (printed) and videos (SRT / WebVTT / JSON files).

    clipprefix caption photo.jpg holidays/ "shots/*.png"          # path<TAB>caption per image
    clipprefix caption photo.jpg --json --strategy beam --num-beams 5 --num-return-sequences 3
    clipprefix caption photo.jpg --render captioned/              # the picture with its caption under it
    clipprefix caption film.mp4                                    # -> film_captions/film.{srt,vtt,json}
    clipprefix caption film.mp4 --scenes --keyframes --preview --out subs/
    clipprefix caption clips/ --segments 8 --model tiny-video      # a folder of videos as a batch

Inputs are files, folders (their images and videos, not recursive) or glob patterns; a file is an
image or a video by its content, whatever its name (files in a folder that are neither are skipped,
with a count on stderr). Images are captioned in batches; an input that fails, for whatever reason,
is reported on stderr in one line and the others are captioned; the exit status is 1 when some
inputs failed, 2 when nothing could be captioned. Subtitle times count from the video's first
frame, as players show them (the JSON also keeps the file's own times). Nothing is written beside the
inputs: video results go to `--out` (default `<stem>_captions/` next to each video), and every file
is written atomically, so a failure leaves no partial file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...base.errors import ClipPrefixError
from ...core.generation import GenerationConfig
from ...data import sampling
from ..caption import caption_image_files
from ..inputs import collect_inputs, unique_name
from ..options import (DEFAULT_MODEL, add_decoding_args, add_dtype_arg, check_writable, decoding_overrides,
                       load_captioner)
from ..render import caption_under, save_image
from ..subtitles import FORMATS
from ..video_captions import DEFAULT_SEGMENTS, caption_video

HELP = "caption images (printed) and videos (SRT/VTT/JSON files)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="images, videos, folders or glob patterns")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset, checkpoint folder or Hub id (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_dtype_arg(p)
    p.add_argument("--batch-size", type=int, default=32, help="images (or video segments) per batch")
    p.add_argument("--json", action="store_true", help="print one JSON object per input instead of path<TAB>caption")
    p.add_argument("--render", metavar="DIR", help="write each image with its caption drawn under it into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    v = p.add_argument_group("videos")
    seg = v.add_mutually_exclusive_group()
    seg.add_argument("--segments", type=int, metavar="N", help="N segments of equal length")
    seg.add_argument("--every", type=float, metavar="SECONDS", help="one segment every SECONDS (default 2)")
    seg.add_argument("--scenes", type=float, nargs="?", const=0.1, metavar="THRESHOLD",
                     help="one segment per scene; a cut is a mean frame change above THRESHOLD (0-1, default 0.1)")
    v.add_argument("--out", metavar="DIR", help="output folder (default: <stem>_captions/ next to each video)")
    v.add_argument("--formats", default="srt,vtt,json", help="subtitle files to write (default srt,vtt,json)")
    v.add_argument("--merge-similarity", type=float, default=0.85,
                   help="merge consecutive captions at least this similar (0-1; default 0.85)")
    v.add_argument("--no-merge", action="store_true", help="one cue per segment")
    v.add_argument("--keyframes", action="store_true", help="also write each cue's middle frame with its caption")
    v.add_argument("--preview", action="store_true",
                   help="also write <stem>_preview.mp4: the video with the captions burned in, with the source's audio "
                        "(copied, or re-encoded to AAC when mp4 cannot hold its codec)")
    add_decoding_args(p)


def _segmentation(args) -> tuple[str, bool]:
    """(policy, strict): explicit segment choices are checked against the video's length."""
    if args.segments is not None:
        if args.segments < 1:
            raise ClipPrefixError(f"--segments must be at least one, got {args.segments}.")
        return str(sampling.uniform(args.segments)), True
    if args.every is not None:
        if not args.every > 0:
            raise ClipPrefixError(f"--every takes a positive number of seconds, got {args.every:g}.")
        return str(sampling.every(args.every)), True
    if args.scenes is not None:
        return str(sampling.scenes(args.scenes)), True
    return DEFAULT_SEGMENTS, False


def _fail(msg: str) -> None:
    print(f"clipprefix caption: error: {msg}", file=sys.stderr)


def run(args) -> int:
    # everything that can be checked without the model is checked first
    overrides = decoding_overrides(args)
    GenerationConfig().updated(**{**overrides, "num_return_sequences": 1}).validate()
    if args.batch_size < 1:
        raise ClipPrefixError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if not 0 <= args.merge_similarity <= 1:
        raise ClipPrefixError(f"--merge-similarity must be between 0 and 1, got {args.merge_similarity}.")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        raise ClipPrefixError(f"--formats takes a comma-separated list of {', '.join(FORMATS)}, got '{args.formats}'.")
    policy, strict = _segmentation(args)
    inputs = collect_inputs(args.inputs)
    for e in inputs.errors:
        _fail(e)
    for where, n in inputs.skipped:
        print(f"clipprefix caption: skipped {n} file{'s' if n > 1 else ''} in {where} that "
              f"{'are' if n > 1 else 'is'} neither an image nor a video.", file=sys.stderr)
    if not inputs.images and not inputs.videos:
        return 2
    if args.render and inputs.images:
        check_writable(Path(args.render), "--render folder")
    if inputs.videos:
        for out in ([Path(args.out)] if args.out else [v.parent / f"{v.stem}_captions" for v in inputs.videos]):
            check_writable(out, "output folder")

    captioner = load_captioner(args.model, args.device, args.dtype)
    progress = False if args.no_progress else None
    failed, done = len(inputs.errors), 0
    if inputs.images:
        failed_images, n = _caption_images(captioner, inputs.images, args, overrides, progress)
        failed += failed_images
        done += n
    used: set[str] = set()
    for v in inputs.videos:
        try:
            _caption_one_video(captioner, v, args, overrides, policy, strict, formats, progress, used)
            done += 1
        except Exception as e:  # noqa: BLE001 - one bad item never stops the batch: reported, the rest go on
            _fail(_sentence(v, e))
            failed += 1
    return 0 if not failed else (1 if done else 2)


def _sentence(path: Path, e: Exception) -> str:
    """An expected failure's own sentence, or one naming the item and what went wrong."""
    if isinstance(e, ClipPrefixError):
        return str(e)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{path} failed ({type(e).__name__}{': ' + first if first else ''})."


def _caption_images(captioner, paths, args, overrides, progress) -> tuple[int, int]:
    gen = captioner.generation.updated(**overrides).validate()
    failed = done = 0
    used: set[str] = set()
    for path, cap in caption_image_files(captioner, paths, batch_size=args.batch_size, progress=progress, **overrides):
        if isinstance(cap, ClipPrefixError):
            _fail(str(cap))
            failed += 1
            continue
        rendered = None
        if args.render:
            target = Path(args.render) / f"{unique_name(path.stem, used)}.jpg"
            try:
                rendered = save_image(caption_under(path, cap.text), target)
            except OSError as e:
                _fail(f"Cannot write {target} ({e.strerror or e}).")
                failed += 1
                continue
            except Exception as e:  # noqa: BLE001 - one bad item never stops the batch
                _fail(_sentence(path, e))
                failed += 1
                continue
        if args.json:
            rec = {"path": str(path), "caption": cap.text, "score": cap.score, "alternatives": cap.alternatives,
                   "generation": gen.to_dict()}
            if rendered:
                rec["rendered"] = str(rendered)
            print(json.dumps(rec, ensure_ascii=False), flush=True)
        else:
            print(f"{path}\t{cap.text}", flush=True)
        done += 1
    return failed, done


def _caption_one_video(captioner, path: Path, args, overrides, policy, strict, formats, progress, used) -> None:
    result = caption_video(captioner, path, policy, strict=strict, batch_size=args.batch_size, progress=progress,
                           merge=None if args.no_merge else args.merge_similarity, thumbnails=False, **overrides)
    out = Path(args.out) if args.out else path.parent / f"{path.stem}_captions"
    stem = unique_name(path.stem, used) if args.out else path.stem
    try:
        written = result.write(out, stem, formats=formats, keyframes=args.keyframes, preview=args.preview,
                               progress=progress)
    except OSError as e:
        raise ClipPrefixError(f"Cannot write the captions of {path} into {out} ({e.strerror or e}).") from e
    if args.json:
        print(json.dumps({"path": str(path), "segments": len(result.segments), "cues": len(result.cues),
                          "seconds": round(result.seconds, 3), "outputs": {k: str(v) for k, v in written.items()}},
                         ensure_ascii=False), flush=True)
    else:
        first = written.get("srt") or next(iter(written.values()))
        print(f"{path}\t{first} ({len(result.cues)} cues from {len(result.segments)} segments)", flush=True)
