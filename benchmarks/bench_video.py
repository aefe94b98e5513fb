"""A video into subtitles, end to end: clipprefix against the seed's approach done fairly, in one run.

    python benchmarks/bench_video.py                    # 60 s 1280x720 clip -> 60 segments (~6 min on 2 cores)
    python benchmarks/bench_video.py --seconds 20 --segments 20 --live-seconds 10   # quicker

ViT-B/32 + GPT-2 small with random weights (real sizes, nothing downloaded), an MLP mapper (K=10),
and a fixed 20 greedy tokens per segment on both sides (`stop_at_eos=False`), so the work is equal.
The clip is the panned-texture 30 fps H.264 clip of bench_extract.py (generated once, cached).

- seed approach, done fairly: the model is loaded once (the seed reloaded it for every frame), each
  segment's frame is read by OpenCV seeking (`CAP_PROP_POS_MSEC`), preprocessed by open_clip's
  PIL transform and captioned one frame at a time by ClipCap's reference loop (GPT-2 re-run over the
  whole sequence, logits at every position, no KV cache);
- clipprefix: `video_captions.caption_video` (PyAV decoding on a background thread, frames converted
  straight to 224 px, CLIP and the KV-cache decoder on batches of 32 segments) and the SRT/VTT/JSON
  files written; fp32, and bf16 weights as an extra row.

Both sides run in this process with the same model object and the same segment centres. The
reference loop is also given clipprefix's own first two frames: its tokens must equal clipprefix's
fp32 tokens (same work, not less). Then `live` on the same clip played in real time: caption
refreshes per second and lag (frame read -> caption ready). Exit status 1 if the tokens differ.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_caption import K, TOKENS, build, reference_greedy  # noqa: E402  the reference loop and model
from bench_extract import make_clip  # noqa: E402  the cached 720p test clip

from clipprefix.data import video  # noqa: E402
from clipprefix.base import paths
from clipprefix.core.captioner import Captioner  # noqa: E402
from clipprefix.core.generation import GenerationConfig  # noqa: E402
from clipprefix.core.encoder import ClipEncoder  # noqa: E402
from clipprefix.apps.video_captions import caption_video  # noqa: E402


class IdTokenizer:
    """Token ids as text: GPT-2's tokenizer is not needed to time decoding (and is not downloaded)."""
    eos_token_id = 50256

    def decode(self, ids, skip_special_tokens=True, **kw):
        return " ".join(map(str, ids))


def make_captioner(clip, spec, model, dtype=torch.float32) -> Captioner:
    config = {"clip": {"model": "ViT-B-32", "embed_dim": 512}, "mapper": {"type": "mlp", "prefix_length": K},
              "name": "vit-b-32+gpt2 (random)",
              "generation": GenerationConfig(max_new_tokens=TOKENS, stop_at_eos=False).to_dict()}
    encoder = ClipEncoder(copy.deepcopy(clip).to(dtype), spec, dtype=dtype)
    return Captioner(config, copy.deepcopy(model), IdTokenizer(), encoder=encoder, dtype=dtype)


def seed_way(path: Path, times: list[float], clip, tf, model, lm) -> list[list[int]]:
    """OpenCV seeks to each segment's time, then the ClipCap reference loop, one frame at a time."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    for t in times:
        cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000.0)
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"OpenCV could not read the frame at {t:.2f} s")
        out.append(reference_greedy(clip, tf, model, lm, np.ascontiguousarray(bgr[..., ::-1])))
    cap.release()
    return out


def ours(cap: Captioner, path: Path, n: int, out: Path):
    r = caption_video(cap, path, video.uniform(n), merge=None, progress=False)
    r.write(out)
    return r


def live_numbers(cap: Captioner, path: Path, seconds: float) -> str:
    from clipprefix.apps.live import open_source, run_session

    r = run_session(cap, open_source(str(path)), max_seconds=seconds)
    s = r.lag_stats()
    return (f"{r.refresh_rate:.2f} captions/s, lag mean {s['mean']:.2f} s / median {s['median']:.2f} s / "
            f"max {s['max']:.2f} s, display loop {r.fps:.1f} fps over {r.wall:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--segments", type=int, default=60)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--no-bf16", action="store_true")
    args = ap.parse_args(argv)

    import open_clip

    path = make_clip(paths.cache_dir() / "bench" / f"texture_{args.seconds}s_720p30.mp4", args.seconds)
    info = video.probe(path)
    clip, spec, model, ref_lm = build()
    spec["preprocess"].update(interpolation="bicubic", resize_mode="shortest")
    tf = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                   std=open_clip.OPENAI_DATASET_STD)
    cap32 = make_captioner(clip, spec, model)
    times = [(a + b) / 2 for a, b in video.uniform(args.segments).slots(info)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))

    # warm-up: oneDNN builds kernels per shape on first use, on both sides
    ours(cap32, path, 2, tmp / "warm")
    seed_way(path, times[:1], clip, tf, model, ref_lm)

    load = [os.getloadavg()[0]]
    t = time.perf_counter()
    ref_tokens = seed_way(path, times, clip, tf, model, ref_lm)
    t_seed = time.perf_counter() - t
    t = time.perf_counter()
    r32 = ours(cap32, path, args.segments, tmp / "fp32")
    t_ours = time.perf_counter() - t
    rows = [("seed approach (OpenCV seek + reference loop)", t_seed), ("clipprefix caption_video, fp32", t_ours)]
    if not args.no_bf16:
        cap16 = make_captioner(clip, spec, model, torch.bfloat16)
        ours(cap16, path, 2, tmp / "warm16")
        t = time.perf_counter()
        r16 = ours(cap16, path, args.segments, tmp / "bf16")
        rows.append(("clipprefix caption_video, bf16 weights", time.perf_counter() - t))
    load.append(os.getloadavg()[0])

    # same work: the reference loop on clipprefix's own frames gives clipprefix's tokens
    frames = list(video.frames_at(path, times[:2], short_side=224))
    ours_tokens = [[int(x) for x in s.text.split()] for s in r32.segments]
    ref_on_ours = [reference_greedy(clip, tf, model, ref_lm, f.image) for f in frames]
    # the reference transform resizes the 224-px frame again (a no-op for size), so pixels match
    same = [a == b for a, b in zip(ref_on_ours, ours_tokens[:2])]
    agree_seed = np.mean([a == b for a, b in zip(ref_tokens, ours_tokens)])

    print(f"\n{info.width}x{info.height} {info.fps:.0f} fps, {info.duration:.0f} s -> {args.segments} segments, "
          f"ViT-B/32 + GPT-2 small (random weights), {TOKENS} greedy tokens each, {torch.get_num_threads()} CPU "
          f"threads, load average {load[0]:.1f} -> {load[1]:.1f}")
    for name, s in rows:
        print(f"  {name:46s} {s:7.1f} s  {args.segments / s:6.2f} segments/s  x{t_seed / s:5.1f}")
    print(f"  clipprefix / seed speed ratio: {t_seed / t_ours:.1f}x (fp32)"
          + (f", {t_seed / rows[2][1]:.1f}x (bf16)" if len(rows) > 2 else ""))
    print(f"  tokens: reference loop on clipprefix's frames == clipprefix fp32: {sum(same)}/{len(same)}; "
          f"seed approach (its own OpenCV frames and PIL resize) == clipprefix: {agree_seed:.0%} of segments")
    if len(rows) > 2:
        agree16 = np.mean([a.text == b.text for a, b in zip(r16.segments, r32.segments)])
        print(f"  bf16 captions equal to fp32 (random weights): {agree16:.0%} of segments")
    print(f"  outputs: {sorted(p.name for p in (tmp / 'fp32').iterdir())}")

    if args.live_seconds > 0:
        print(f"live, {path.name} played in real time for {args.live_seconds:.0f} s (headless):")
        print(f"  ViT-B/32 + GPT-2, fp32: {live_numbers(cap32, path, args.live_seconds)}")
        from clipprefix.apps.options import load_captioner
        tiny = load_captioner("tiny")
        print(f"  tiny preset:            {live_numbers(tiny, path, args.live_seconds)}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
