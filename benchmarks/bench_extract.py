"""Frame sampling + CLIP features for one long clip: clipprefix against the seeds' approach, in one run.

    python benchmarks/bench_extract.py                 # 60 s 1280x720 30 fps H.264, 16 uniform frames, ViT-B/32
    python benchmarks/bench_extract.py --seconds 20 --repeats 1   # quicker

The clip is generated once (panned texture + a moving shape, libx264 `veryfast`, default keyframe
spacing of 250 frames) and cached. ViT-B/32 has random weights (`pretrained=None`): speed does not
depend on the weights. Both sides use the same model object and the same 16 target times (segment
centres); the runs are interleaved and the medians reported, since other processes share the CPU.

- seeds: OpenCV decodes and converts every frame to BGR, keeps the 16 chosen ones (the fork kept all
  of them in a list), then PIL + torchvision preprocessing and CLIP one frame at a time.
- clipprefix: `video.sample(path, uniform(16), short_side=224)` (seeks across keyframes, skips
  frames nothing depends on, converts only the chosen frames, straight to 224 px) and one CLIP batch,
  in the dtype `clipprefix extract` picks by default (`--dtype auto`: bf16 on a CPU with bf16 units,
  else fp32) and in the other one of fp32/bf16.

Both sides build ViT-B/32 with QuickGELU, as OpenAI's weights (the default encoder) need.
Exit status 1 if the two sides choose frames more than one frame apart, or if bf16 features drift
from fp32's (cosine < 0.999).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clipprefix import synthetic
from clipprefix.base import paths
from clipprefix.data import video
from clipprefix.core.encoder import SHORT_NAMES, ClipEncoder, resolve_dtype


def make_clip(path: Path, seconds: int, fps: int = 30, size=(1280, 720)) -> Path:
    if path.is_file():
        return path
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(0)
    # a smooth random texture twice the frame size, panned: every block moves, as in camera footage
    tex = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 8, w // 4, 3), dtype=np.uint8)).resize((2 * w, 2 * h), Image.BICUBIC))

    def frames():
        for i in range(seconds * fps):
            x, y = int(200 + 150 * np.sin(i / 90)), int(100 + 80 * np.cos(i / 70))
            f = tex[y:y + h, x:x + w].copy()
            cx = (i * 13) % w
            f[h // 2 - 60:h // 2 + 60, max(0, cx - 60):cx + 60] = (220, 40, 40)
            yield f

    t = time.time()
    synthetic.write_mp4(path, frames(), fps, options={"preset": "veryfast"})
    print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.time() - t:.0f} s")
    return path


def seeds_way(path: Path, times: list[float], model, transform, split: dict) -> tuple[torch.Tensor, list[int]]:
    """OpenCV reads every frame; keep those on screen at `times`; CLIP one frame at a time."""
    import cv2
    from PIL import Image

    t = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    wanted = [int(t * fps + 1e-6) for t in times]   # constant rate: the frame on screen at t
    kept, i = {}, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            kept[i] = frame
        i += 1
    cap.release()
    split["decode"] = time.perf_counter() - t
    feats = []
    with torch.inference_mode():
        for k in wanted:
            img = Image.fromarray(kept[k][:, :, ::-1])
            feats.append(model.encode_image(transform(img).unsqueeze(0)))
    return torch.cat(feats), wanted


def our_way(path: Path, n: int, enc: ClipEncoder, split: dict) -> tuple[torch.Tensor, list[video.Frame]]:
    t = time.perf_counter()
    frames = list(video.sample(path, video.uniform(n), short_side=enc.spec["preprocess"]["size"]))
    split["decode"] = time.perf_counter() - t
    return enc.encode_pixels(enc.preprocess([f.image for f in frames])), frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import open_clip

    clip = make_clip(paths.cache_dir() / "bench" / f"texture_{args.seconds}s_720p30.mp4", args.seconds)
    info = video.probe(clip)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True).eval()   # as OpenAI's weights
    transform = open_clip.image_transform(224, is_train=False)   # what clip.load's preprocess does
    pp = open_clip.get_model_preprocess_cfg(model)
    spec = {"model": "ViT-B-32", "pretrained": None, "embed_dim": 512,
            "preprocess": {"size": 224, "mean": list(pp["mean"]), "std": list(pp["std"]),
                           "interpolation": "bicubic", "resize_mode": "shortest"}}
    auto = resolve_dtype("auto", "cpu")                # what `clipprefix extract` uses by default here
    other = torch.float32 if auto != torch.float32 else torch.bfloat16
    encoders = {}
    for dt in (auto, other):                           # the seeds' side keeps open_clip's model as it is
        encoders[dt] = ClipEncoder(copy.deepcopy(model), spec, dtype=dt)
    names = {auto: f"clipprefix (auto={SHORT_NAMES[auto]})", other: f"clipprefix --dtype {SHORT_NAMES[other]}"}
    times = [(s + e) / 2 for s, e in video.uniform(args.frames).slots(info)]

    with torch.inference_mode():
        model.encode_image(torch.zeros(1, 3, 224, 224))   # warm-up: first calls allocate
        for enc in encoders.values():
            enc.encode_pixels(torch.zeros(2, 3, 224, 224))
    load_before = os.getloadavg()[0]
    walls = {"seeds": [], names[auto]: [], names[other]: []}
    decode = {k: [] for k in walls}
    feats = {}
    for _ in range(args.repeats):   # interleaved: slow phases of a shared CPU hit every side
        split = {}
        t = time.perf_counter()
        f_seed, idx_seed = seeds_way(clip, times, model, transform, split.setdefault("seeds", {}))
        walls["seeds"].append(time.perf_counter() - t)
        for dt, enc in encoders.items():
            t = time.perf_counter()
            feats[dt], frames = our_way(clip, args.frames, enc, split.setdefault(names[dt], {}))
            walls[names[dt]].append(time.perf_counter() - t)
        for name, sp in split.items():
            decode[name].append(sp["decode"])

    idx_ours = [int(round(f.time * info.fps)) for f in frames]
    off = max(abs(a - b) for a, b in zip(idx_ours, idx_seed))
    f_ours = feats[torch.float32]
    cos = torch.nn.functional.cosine_similarity(f_ours, f_seed).min().item()
    cos_bf16 = torch.nn.functional.cosine_similarity(feats[torch.bfloat16], f_ours).min().item()
    n_video_frames = info.frame_count
    print(f"\n{info.width}x{info.height} {info.fps:.0f} fps, {info.duration:.0f} s ({n_video_frames} frames), "
          f"{args.frames} uniform frames, CLIP ViT-B/32 (random weights), {torch.get_num_threads()} CPU threads, "
          f"median of {args.repeats}, load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
          "(other processes on the CPU slow one-image CLIP calls most)")
    base = statistics.median(walls["seeds"])
    for name, w in walls.items():
        m, d = statistics.median(w), statistics.median(decode[name])
        print(f"  {name:28s} {m:6.2f} s wall (frames {d:5.2f} s, CLIP {m - d:5.2f} s)  "
              f"{n_video_frames / m:6.0f} video frames/s  {args.frames / m:5.1f} sampled frames/s  x{base / m:4.1f}")
    print(f"  frame choice: max |index difference| = {off} (clipprefix {idx_ours[:4]}..., seeds {idx_seed[:4]}...)")
    print(f"  features: min cosine clipprefix vs seeds {cos:.4f} (resize path differs), bf16 vs fp32 {cos_bf16:.4f}")
    if cos_bf16 < 0.999:
        print("FAIL: bf16 features drift from fp32's (cosine < 0.999)")
    return 0 if off <= 1 and cos_bf16 >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
