"""`clipprefix caption`: captions for images (printed) and videos (SRT / WebVTT / JSON files).

    clipprefix caption photo.jpg holidays/ "shots/*.png"          # path<TAB>caption per image
    clipprefix caption photo.jpg --json --strategy beam --num-beams 5 --num-return-sequences 3
    clipprefix caption photo.jpg --render captioned/              # the picture with its caption under it
    clipprefix caption film.mp4                                    # -> film_captions/film.{srt,vtt,json}
    clipprefix caption film.mp4 --scenes --keyframes --preview --out subs/
    clipprefix caption clips/ --segments 8 --model tiny-video      # a folder of videos as a batch

Inputs are files, folders (their images and videos, not recursive) or glob patterns. Images are
captioned in batches; a file that cannot be read is reported on stderr and skipped, and the exit
status is 1 when some inputs failed, 2 when nothing could be captioned. Nothing is written beside the
inputs: video results go to `--out` (default `<stem>_captions/` next to each video), and every file
is written atomically, so a failure leaves no partial file.
"""
from __future__ import annotations

import argparse
import glob
import html
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..base.errors import ClipPrefixError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}
DEFAULT_MODEL = "clipcap-coco"


# ------------------------------------------------------------------ model loading (once per process)
_LOADED: dict[tuple, Any] = {}


def load_captioner(model: str, device: str = "cpu", dtype: str = "fp32"):
    """`Captioner.from_pretrained(model)` in `dtype` (fp32, bf16 or fp16: CLIP, mapper and LM), kept per
    process (notebooks, widgets and tests reuse it)."""
    from ..core.captioner import Captioner
    from ..core.checkpoint import resolve
    from ..core.encoder import resolve_dtype

    torch_dtype = resolve_dtype(dtype)
    folder = resolve(model)
    cfg = folder / "config.json"
    key = (str(folder.resolve()), cfg.stat().st_mtime_ns, str(device), torch_dtype)
    if key not in _LOADED:
        _LOADED.clear()        # one model at a time: they can be large
        _LOADED[key] = Captioner.from_pretrained(folder, device=device, dtype=torch_dtype)
    return _LOADED[key]


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="weights and compute dtype; bf16 is about twice as fast on CPUs with bf16 units "
                        "(AVX512-BF16, AMX) and on GPUs, fp16 on GPUs")


# ------------------------------------------------------------------ inputs
@dataclass
class Inputs:
    images: list[Path]
    videos: list[Path]
    errors: list[str]


def kind_of(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def collect_inputs(args: Sequence[str]) -> Inputs:
    """Expand files, folders and glob patterns into image and video lists (deduplicated, in order)."""
    images, videos, errors, seen = [], [], [], set()

    def add(p: Path, explicit: bool):
        k = kind_of(p)
        if k is None:
            if explicit:
                errors.append(f"{p} is neither an image ({', '.join(sorted(IMAGE_EXTS))}) nor a video "
                              f"({', '.join(sorted(VIDEO_EXTS))}).")
            return
        if p.resolve() in seen:
            return
        seen.add(p.resolve())
        (images if k == "image" else videos).append(p)

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            found = [q for q in sorted(p.iterdir()) if q.is_file() and kind_of(q) and not q.name.startswith(".")]
            if not found:
                errors.append(f"Folder {p} has no images or videos.")
            for q in found:
                add(q, False)
        elif p.exists():
            add(p, True)
        elif glob.has_magic(arg):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(arg), recursive=True))]
            matches = [m for m in matches if m.is_file() and kind_of(m)]
            if not matches:
                errors.append(f"The pattern {arg} matches no images or videos.")
            for m in matches:
                add(m, False)
        else:
            errors.append(f"{p}: no such file or folder.")
    return Inputs(images, videos, errors)


def check_writable(folder: Path, what: str) -> None:
    """Fail early (before any work) when `folder` cannot be created or written."""
    p = Path(folder).expanduser().absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ClipPrefixError(f"The {what} {folder} cannot be created: {probe} is a file, not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ClipPrefixError(f"The {what} {folder} cannot be written: no write permission on {probe}.")


def _unique(stem: str, used: set[str]) -> str:
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}-{k}", k + 1
    used.add(name)
    return name


# ------------------------------------------------------------------ images
def caption_image_files(captioner, paths: Sequence[Path], *, batch_size: int = 32, progress: bool | None = None,
                        **overrides) -> Iterator[tuple[Path, Any]]:
    """Yield (path, Caption) or (path, ClipPrefixError) per image, in order; images are opened one by
    one (a bad file fails alone) and captioned in batches."""
    from tqdm.auto import tqdm

    from ..core.captioner import _open_image

    with tqdm(total=len(paths), unit="img", desc="images", leave=False,
              disable=(not progress) if progress is not None else None) as bar:
        for i in range(0, len(paths), batch_size):
            good, results = [], {}
            for p in paths[i:i + batch_size]:
                try:
                    if Path(p).is_file() and Path(p).stat().st_size == 0:
                        raise ClipPrefixError(f"Image {p} is empty (0 bytes).")
                    good.append((p, _open_image(p)))
                except ClipPrefixError as e:
                    results[p] = e
            caps = captioner.caption_images([im for _, im in good], batch_size=batch_size, **overrides) if good else []
            results.update({p: c for (p, _), c in zip(good, caps)})
            for p in paths[i:i + batch_size]:
                yield p, results[p]
            bar.update(len(paths[i:i + batch_size]))


@dataclass
class DecodingComparison:
    """Captions of the same images under several decoding settings (a table in notebooks)."""
    images: list[Any]
    settings: dict[str, dict]
    captions: dict[str, list]          # setting name -> one Caption per image

    def _repr_html_(self) -> str:
        from .display import thumbnail_data_uri

        head = "<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in self.settings) + "</tr>"
        rows = []
        for i, im in enumerate(self.images):
            cells = "".join(f"<td>{html.escape(self.captions[n][i].text)}<br><small>{self.captions[n][i].score:.2f}"
                            "</small></td>" for n in self.settings)
            rows.append(f'<tr><td><img src="{thumbnail_data_uri(im, 96)}"></td>{cells}</tr>')
        return f"<table>{head}{''.join(rows)}</table>"


def compare_decoding(captioner, images: Sequence[Any], settings: dict[str, dict] | None = None) -> DecodingComparison:
    """Caption `images` once per decoding setting, e.g. {"greedy": {}, "beam 5": {"strategy": "beam"}}."""
    settings = settings or {"greedy": {"strategy": "greedy"},
                            "beam (5)": {"strategy": "beam", "num_beams": 5},
                            "sample (T=0.7, p=0.9)": {"strategy": "sample", "temperature": 0.7, "top_p": 0.9,
                                                      "seed": 0}}
    images = list(images)
    feats = captioner.encode_images(images)[:, None]      # encode once, decode many ways
    caps = {name: captioner.caption_features(feats, **kw) for name, kw in settings.items()}
    return DecodingComparison(images, settings, caps)


# ------------------------------------------------------------------ CLI
def add_decoding_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (default: the checkpoint's own settings)")
    g.add_argument("--strategy", choices=["greedy", "beam", "sample"])
    g.add_argument("--num-beams", type=int)
    g.add_argument("--length-penalty", type=float)
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--num-return-sequences", type=int, help="alternatives to return (beam / sample)")
    g.add_argument("--repetition-penalty", type=float)
    g.add_argument("--no-repeat-ngram-size", type=int)
    g.add_argument("--seed", type=int, help="sampling seed (reproducible sampling)")


def decoding_overrides(args) -> dict:
    keys = ("strategy", "num_beams", "length_penalty", "temperature", "top_k", "top_p", "max_new_tokens",
            "num_return_sequences", "repetition_penalty", "no_repeat_ngram_size", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def add_caption_parser(subparsers) -> None:
    p = subparsers.add_parser("caption", help="caption images (printed) and videos (SRT/VTT/JSON files)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    v.add_argument("--preview", action="store_true", help="also write <stem>_preview.mp4 with the captions burned in")
    add_decoding_args(p)
    p.set_defaults(func=run_caption)


def _segmentation(args) -> tuple[str, bool]:
    """(policy, strict): explicit segment choices are checked against the video's length."""
    from ..data import video

    if args.segments is not None:
        if args.segments < 1:
            raise ClipPrefixError(f"--segments must be at least one, got {args.segments}.")
        return str(video.uniform(args.segments)), True
    if args.every is not None:
        if not args.every > 0:
            raise ClipPrefixError(f"--every takes a positive number of seconds, got {args.every:g}.")
        return str(video.every(args.every)), True
    if args.scenes is not None:
        return str(video.scenes(args.scenes)), True
    from .video_captions import DEFAULT_SEGMENTS
    return DEFAULT_SEGMENTS, False


def _fail(msg: str) -> None:
    print(f"clipprefix caption: error: {msg}", file=sys.stderr)


def run_caption(args) -> int:
    from ..core.decoding import GenerationConfig
    from .subtitles import FORMATS

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
        except ClipPrefixError as e:
            _fail(str(e))
            failed += 1
    return 0 if not failed else (1 if done else 2)


def _caption_images(captioner, paths, args, overrides, progress) -> tuple[int, int]:
    from .render import caption_under, save_image

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
            target = Path(args.render) / f"{_unique(path.stem, used)}.jpg"
            try:
                rendered = save_image(caption_under(path, cap.text), target)
            except OSError as e:
                raise ClipPrefixError(f"Cannot write {target} ({e.strerror or e}).") from e
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
    from .video_captions import caption_video

    result = caption_video(captioner, path, policy, strict=strict, batch_size=args.batch_size, progress=progress,
                           merge=None if args.no_merge else args.merge_similarity, thumbnails=False, **overrides)
    out = Path(args.out) if args.out else path.parent / f"{path.stem}_captions"
    stem = _unique(path.stem, used) if args.out else path.stem
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
