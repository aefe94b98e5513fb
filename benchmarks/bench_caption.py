"""End-to-end captioning speed: clipprefix versus the ClipCap reference loop, in one run.

    python benchmarks/bench_caption.py            # 5 interleaved rounds, medians: ~3 minutes on a 2-core CPU
    python benchmarks/bench_caption.py --quick    # fewer images, one round, for a smoke check

ViT-B/32 (built with QuickGELU, as OpenAI's weights need) + GPT-2 small with random weights (real
sizes, no download), an MLP mapper (K=10), and a
fixed 20 decoded tokens in every method (stopping disabled) so the work is equal. Each method goes
from images (640x480 uint8) through preprocessing, CLIP, the mapper and decoding.

- reference: ClipCap's loop as published: one image at a time, the whole sequence re-run through
  GPT-2 at every step with logits at every position (`generate2`, and `generate_beam` for beam 5);
- clipprefix: batched, KV cache, logits only where needed, GPT-2's step written out (`gpt2_step.py`)
  and oneDNN's products on the CPU (`cpu_linear.py`); batch 1 and 32, fp32 and bf16 weights.

Prints images/s, the ratio to the reference, fp32 token agreement with the reference (must be 100%),
bf16 agreement, and the fraction of this machine's matmul FLOP/s reached (FLOPs counted with
torch.utils.flop_counter; the limit is the fastest of MKL and oneDNN (plain and packed weight) on a
large product, measured in the same run). Exits 1 if the fp32 tokens differ from the reference.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import open_clip
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

from clipprefix.fast.cpu_linear import cpu_linear, pack
from clipprefix.core.decoding import generate
from clipprefix.core.generation import GenerationConfig
from clipprefix.core.encoder import ClipEncoder
from clipprefix.core.mappers import MapperConfig
from clipprefix.core.model import ClipPrefixModel

TOKENS = 20
K = 10


def build(seed=0):
    torch.manual_seed(seed)
    clip = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True).eval()   # as OpenAI's weights
    spec = {"model": "ViT-B-32", "pretrained": None, "embed_dim": 512,
            "preprocess": {"size": 224, "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}}
    lm = GPT2LMHeadModel(GPT2Config()).eval()
    reference_lm = copy.deepcopy(lm)   # transformers' GPT-2 exactly as the reference loop uses it
    model = ClipPrefixModel(MapperConfig(type="mlp", clip_dim=512, n_embd=768, prefix_length=K), lm).eval()
    return clip, spec, model, reference_lm


# ------------------------------------------------------------------ the ClipCap reference loop
@torch.no_grad()
def reference_greedy(clip, tf, model, lm, image):
    x = tf(Image.fromarray(image)).unsqueeze(0)
    prefix = clip.encode_image(x).float()
    generated = model.mapper(prefix[:, None]).view(1, K, -1)
    tokens = []
    for _ in range(TOKENS):
        logits = lm(inputs_embeds=generated).logits[:, -1, :]
        nxt = torch.argmax(logits, -1).unsqueeze(0)
        tokens.append(int(nxt))
        generated = torch.cat((generated, lm.transformer.wte(nxt)), dim=1)
    return tokens


@torch.no_grad()
def reference_beam(clip, tf, model, lm, image, beam_size=5):
    x = tf(Image.fromarray(image)).unsqueeze(0)
    generated = model.mapper(clip.encode_image(x).float()[:, None]).view(1, K, -1)
    tokens, scores = None, None
    seq_lengths = torch.ones(beam_size)
    for _ in range(TOKENS):
        logits = lm(inputs_embeds=generated).logits[:, -1, :].softmax(-1).log()
        if scores is None:
            scores, next_tokens = logits.topk(beam_size, -1)
            generated = generated.expand(beam_size, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            scores_sum = scores[:, None] + logits
            seq_lengths += 1
            avg = scores_sum / seq_lengths[:, None]
            avg, next_tokens = avg.view(-1).topk(beam_size, -1)
            source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[source]
            next_tokens = (next_tokens % scores_sum.shape[1]).unsqueeze(1)
            tokens = torch.cat((tokens[source], next_tokens), dim=1)
            generated = generated[source]
            scores = avg * seq_lengths
        emb = lm.transformer.wte(next_tokens.squeeze()).view(generated.shape[0], 1, -1)
        generated = torch.cat((generated, emb), dim=1)
    return tokens[scores.argmax()].tolist()


# ------------------------------------------------------------------ clipprefix
def ours(encoder, model, images, batch, cfg):
    out = []
    for i in range(0, len(images), batch):
        feats = encoder.encode_pixels(encoder.preprocess(images[i:i + batch]))
        with torch.inference_mode():
            prefix = model.prefix(feats[:, None])
            out.extend(s[0].tokens for s in generate(model.lm, prefix, cfg, eos_token_id=None))
    return out


def timed(fn, *args):
    t = time.perf_counter()
    r = fn(*args)
    return r, time.perf_counter() - t


def _linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of oneDNN's linear (cpu_linear.py), which torch's FLOP counter does not know."""
    rows = 1
    for d in x_shape[:-1]:
        rows *= d
    return 2 * rows * w_shape[0] * w_shape[1]


def flop_counter():
    return FlopCounterMode(display=False, custom_mapping={torch.ops.mkldnn._linear_pointwise: _linear_flops})


def matmul_peak(dtype, n=2048, reps=6):
    """The machine's FLOP limit for `dtype`: the fastest of torch's matmul (MKL for fp32 on a CPU) and
    oneDNN's linear (plain and packed weight) on a large square product, measured now."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    bp = pack(b)
    best = 0.0
    for f in (lambda: a @ b, lambda: cpu_linear(dtype)(a, b, None), lambda: cpu_linear(dtype)(a, bp, None)):
        f()
        t = time.perf_counter()
        for _ in range(reps):
            f()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; ratios are the medians over rounds")
    args = ap.parse_args()
    n_ref, n_beam_ref, n_ours = (1, 1, 8) if args.quick else (2, 1, 32)
    rounds = 1 if args.quick else args.rounds
    torch.set_grad_enabled(False)
    clip, spec, model, ref_lm = build()
    tf = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    encoder = ClipEncoder(copy.deepcopy(clip), spec)    # the reference keeps open_clip's model as it is
    enc16 = ClipEncoder(copy.deepcopy(clip).to(torch.bfloat16), spec, dtype=torch.bfloat16)
    model16 = copy.deepcopy(model).to(torch.bfloat16)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8) for _ in range(n_ours)]
    greedy = GenerationConfig(max_new_tokens=TOKENS, stop_at_eos=False)
    beam = GenerationConfig(strategy="beam", num_beams=5, max_new_tokens=TOKENS, stop_at_eos=False)
    b = min(32, n_ours)
    methods = {   # name -> (images/s measurement, which reference it is compared with)
        "clipprefix greedy, batch 1, fp32": (lambda: 4 / timed(ours, encoder, model, images[:4], 1, greedy)[1], "greedy"),
        f"clipprefix greedy, batch {b}, fp32": (lambda: n_ours / timed(ours, encoder, model, images, 32, greedy)[1], "greedy"),
        f"clipprefix beam 5, batch {b}, fp32": (lambda: n_ours / timed(ours, encoder, model, images, 32, beam)[1], "beam"),
        f"clipprefix greedy, batch {b}, bf16": (lambda: n_ours / timed(ours, enc16, model16, images, 32, greedy)[1], "greedy"),
        "clipprefix greedy, batch 1, bf16": (lambda: 4 / timed(ours, enc16, model16, images[:4], 1, greedy)[1], "greedy"),
    }

    ours(encoder, model, images, 32, greedy)                         # warm-up (oneDNN builds kernels per shape)
    ours(enc16, model16, images, 32, greedy)
    ref = {"greedy": [], "beam": []}
    ratios: dict[str, list[float]] = {name: [] for name in methods}
    speeds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):   # interleaved: a slow phase of a shared CPU hits every side, and medians drop it
        ref_tokens, t = timed(lambda: [reference_greedy(clip, tf, model, ref_lm, im) for im in images[:n_ref]])
        ref["greedy"].append(n_ref / t)
        refb_tokens, t = timed(lambda: [reference_beam(clip, tf, model, ref_lm, im) for im in images[:n_beam_ref]])
        ref["beam"].append(n_beam_ref / t)
        for name, (measure, against) in methods.items():
            ips = measure()
            speeds[name].append(ips)
            ratios[name].append(ips / ref[against][-1])

    b1 = ours(encoder, model, images[:n_ref], 1, greedy)
    b32 = ours(encoder, model, images, 32, greedy)
    bb = ours(encoder, model, images[:n_beam_ref], 32, beam)
    b16 = ours(enc16, model16, images, 32, greedy)
    t32 = n_ours / statistics.median(speeds[f"clipprefix greedy, batch {b}, fp32"])
    t16 = n_ours / statistics.median(speeds[f"clipprefix greedy, batch {b}, bf16"])
    with flop_counter() as fc:
        ours(encoder, model, images, 32, greedy)
    flops = fc.get_total_flops()
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)

    med = statistics.median
    print(f"reference ClipCap loop: greedy {med(ref['greedy']):.3f} img/s ({1 / med(ref['greedy']):.2f} s/img, rounds "
          f"{', '.join(f'{1 / r:.2f}' for r in ref['greedy'])}), beam 5 {med(ref['beam']):.3f} img/s")
    print(f"{'method':40s} {'img/s':>8s} {'x ref':>7s}   (ratio in each of {rounds} round(s))")
    for name in methods:
        print(f"{name:40s} {med(speeds[name]):8.2f} {med(ratios[name]):7.1f}x   "
              f"({', '.join(f'{r:.1f}' for r in ratios[name])})")
    same = sum(a == b for a, b in zip(ref_tokens, b32[:n_ref])) / n_ref
    same_b1 = sum(a == b for a, b in zip(ref_tokens, b1)) / n_ref
    same_beam = sum(a == b for a, b in zip(refb_tokens, bb)) / n_beam_ref
    agree16 = np.mean([np.mean(np.array(a) == np.array(b)) for a, b in zip(b32, b16)])
    print(f"fp32 greedy tokens identical to the reference: {same:.0%} of images (batch 1 run: {same_b1:.0%}); "
          f"beam: {same_beam:.0%}")
    print(f"bf16 greedy tokens equal to fp32 (random weights): {agree16:.0%}")
    print(f"batch-{b} fp32: {flops / 1e9:.1f} GFLOP in {t32:.2f} s (median) = {flops / t32 / 1e9:.1f} GFLOP/s; "
          f"matmul peak {peak32 / 1e9:.1f} GFLOP/s -> {flops / t32 / peak32:.0%} of the FLOP limit")
    print(f"batch-{b} bf16: {flops / t16 / 1e9:.1f} GFLOP/s; bf16 matmul peak {peak16 / 1e9:.1f} GFLOP/s -> "
          f"{flops / t16 / peak16:.0%}")
    if same < 1 or same_b1 < 1 or same_beam < 1:
        print("FAIL: clipprefix's fp32 tokens differ from the reference loop's (the work would not be equal)")
        sys.exit(1)


if __name__ == "__main__":
    main()
