"""Training speed: clipprefix's training step versus ClipCap's training loop, in one run.

    python benchmarks/bench_train.py               # ~4 minutes on a 2-core CPU
    python benchmarks/bench_train.py --quick       # fewer rounds, for a smoke check
    python benchmarks/bench_train.py --device cuda --batch-size 40 --rounds 5 --steps 10

GPT-2 small with random weights (`GPT2LMHeadModel(GPT2Config())`, no download), random 512-d CLIP
features, captions of random tokens with realistic lengths (8-25 tokens with EOS, mean ~12.5, drawn
from 8 + Poisson(4.5)), ClipCap's two published recipes:

- mlp-finetune: MLP mapper (K=10) + GPT-2 fine-tuned;
- transformer-frozen: transformer mapper (K = clip_length = 10, 8 layers) + frozen GPT-2.

The ClipCap loop is re-implemented as rmokady/CLIP_prefix_caption's train.py runs it: every caption
padded with token 0 to one global length (mean + 10 std of the lengths, capped at the longest),
`ignore_index=0`; GPT-2 computes full-vocabulary logits at every position; the frozen recipe leaves
GPT-2's `requires_grad` on (its `parameters()` override only hides GPT-2 from the optimizer and from
`zero_grad`, so every backward pass still computes, and accumulates, 124M weight gradients); the
transformer mapper uses its einsum attention; AdamW with linear warm-up; fp32; batches in random order.

clipprefix is timed through `Trainer.step` itself (`Trainer.for_model`): batches from `epoch_order` (length-grouped
windows), padded to their own longest caption, logits only at labelled positions, no gradients for a
frozen LM, fused GELU. Before timing, both losses are checked to be equal on one batch with the same
weights (ClipCap's captions carry the same final EOS token, so both score exactly the same tokens).

Prints samples/s for each (median of interleaved rounds, so other load on the machine hits both
alike), the ratio, and the matmul FLOPs per step counted with torch.utils.flop_counter.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

from clipprefix.core.mappers import MapperConfig, MultiHeadAttention
from clipprefix.core.model import ClipPrefixModel
from clipprefix.training.config import TrainConfig
from clipprefix.training.pairs import CaptionPairs, epoch_order
from clipprefix.training.trainer import Trainer

K = 10
CLIP_DIM = 512
EOS = 50256


# ------------------------------------------------------------------ data
def make_data(n_items: int, per_item: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = (8 + torch.poisson(torch.full((n_items * per_item,), 4.5), generator=g)).clamp(max=25).long()
    tokens = torch.zeros(len(lengths), int(lengths.max()), dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, :n - 1] = torch.randint(1, EOS, (n - 1,), generator=g)   # never 0: ClipCap's padding id
        tokens[i, n - 1] = EOS
    feats = torch.randn(n_items, 1, CLIP_DIM, generator=g).half()
    item = torch.arange(n_items).repeat_interleave(per_item)
    return CaptionPairs([str(i) for i in range(n_items)], feats, [[]] * n_items, item, tokens, lengths)


def clipcap_pad_length(lengths: torch.Tensor) -> int:
    """ClipCap's `max_seq_len`: min(mean + 10 std, longest)."""
    x = lengths.float()
    return min(int(x.mean() + x.std() * 10), int(x.max()))


def clipcap_batch(data: CaptionPairs, idx: torch.Tensor, max_len: int):
    """ClipCap's `pad_tokens`: pad with -1 to max_len (or cut), mask = tokens >= 0, padding -> 0."""
    rows, masks = [], []
    for i in idx.tolist():
        t = data.tokens[i, :int(data.lengths[i])]
        t = torch.cat([t, torch.zeros(max_len - len(t), dtype=torch.long) - 1]) if len(t) < max_len else t[:max_len]
        m = t.ge(0)
        t[~m] = 0
        rows.append(t)
        masks.append(torch.cat([torch.ones(K), m.float()]))
    return torch.stack(rows), torch.stack(masks), data.features[data.item[idx], 0].float()


# ------------------------------------------------------------------ the ClipCap reference
class EinsumAttention(MultiHeadAttention):
    """ClipCap's attention as written there (einsum, softmax over the key axis)."""

    def forward(self, x):
        b, n, c = x.shape
        h = self.num_heads
        q = self.to_queries(x).reshape(b, n, h, c // h)
        kv = self.to_keys_values(x).reshape(b, n, 2, h, c // h)
        k, v = kv[:, :, 0], kv[:, :, 1]
        att = (torch.einsum("bnhd,bmhd->bnmh", q, k) * self.scale).softmax(dim=2)
        return self.project(torch.einsum("bnmh,bmhd->bnhd", att, v).reshape(b, n, c))


class ClipCaptionModel(nn.Module):
    def __init__(self, gpt, clip_project, frozen: bool):
        super().__init__()
        self.gpt, self.clip_project, self.frozen = gpt, clip_project, frozen

    def forward(self, tokens, prefix, mask):
        embedding_text = self.gpt.transformer.wte(tokens)
        prefix_projections = self.clip_project(prefix).view(-1, K, self.gpt.config.n_embd)
        return self.gpt(inputs_embeds=torch.cat((prefix_projections, embedding_text), dim=1), attention_mask=mask)

    def parameters(self, recurse: bool = True):   # ClipCaptionPrefix: the optimizer (and zero_grad) see the mapper only
        return self.clip_project.parameters() if self.frozen else super().parameters(recurse)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.gpt.eval()
        return self


class ClipCapMLP(nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.model = copy.deepcopy(ours.model)    # Linear(512, 3840), Tanh, Linear(3840, 7680)

    def forward(self, x):
        return self.model(x)


class ClipCapTransformerMapper(nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.m = copy.deepcopy(ours)
        for layer in self.m.transformer.layers:
            layer.attn.__class__ = EinsumAttention

    def forward(self, x):
        return self.m(x[:, None])


class ClipCapLoop:
    def __init__(self, model: ClipCaptionModel, data, max_len, lr, warmup, total, device):
        self.model, self.data, self.max_len, self.device = model.to(device), data, max_len, device
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + 1) / max(1, warmup), max(0.0, (total - s) / max(1, total - warmup))))
        self.model.train()

    def loss(self, idx):
        tokens, mask, prefix = (t.to(self.device) for t in clipcap_batch(self.data, idx, self.max_len))
        logits = self.model(tokens, prefix, mask).logits[:, K - 1:-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.flatten(), ignore_index=0)

    def step(self, idx):
        self.model.zero_grad()
        loss = self.loss(idx)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad()
        return float(loss.detach())


# ------------------------------------------------------------------ clipprefix
def ours_trainer(model: ClipPrefixModel, data, batch_size, device, precision, out) -> Trainer:
    cfg = TrainConfig(cache="(bench)", out=out, batch_size=batch_size, epochs=1, lr=2e-5, tensorboard=False,
                      verbose=False, device=device, precision=precision)
    return Trainer.for_model(cfg, model, data, lr=2e-5)


# ------------------------------------------------------------------ the run
def build(recipe: str, seed: int = 0):
    torch.manual_seed(seed)
    lm = GPT2LMHeadModel(GPT2Config())
    ref_lm = copy.deepcopy(lm)
    if recipe == "mlp-finetune":
        ours = ClipPrefixModel(MapperConfig(type="mlp", clip_dim=CLIP_DIM, n_embd=768, prefix_length=K), lm, train_lm=True)
        ref = ClipCaptionModel(ref_lm, ClipCapMLP(ours.mapper), frozen=False)
    else:
        ours = ClipPrefixModel(MapperConfig(type="transformer", clip_dim=CLIP_DIM, n_embd=768, prefix_length=K,
                                            clip_length=K, num_layers=8), lm, train_lm=False)
        ref = ClipCaptionModel(ref_lm, ClipCapTransformerMapper(ours.mapper), frozen=True)
    return ours, ref


def flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def run(recipe, data, args, device) -> dict:
    ours_model, ref_model = build(recipe)
    max_len = clipcap_pad_length(data.lengths)
    B = args.batch_size
    order = epoch_order(data.lengths, 0, 0, B, group_by_length=True)
    g = torch.Generator().manual_seed(1)
    ref_order = torch.randperm(len(data), generator=g)[: len(order) * B].view(-1, B)
    total = len(order)
    with tempfile.TemporaryDirectory() as tmp:
        ours = ours_trainer(ours_model, data, B, device, args.precision, tmp)
        ref = ClipCapLoop(ref_model, data, max_len, 2e-5, min(5000, total // 10), total, device)
        # same weights, same captions: same loss (eval mode: no dropout)
        ours.model.eval(), ref.model.eval()
        with torch.no_grad():
            idx = ref_order[0]
            a = float(ours.model(*data.batch(idx, ours.device)))
            b = float(ref.loss(idx))
        assert abs(a - b) < 1e-3 * abs(b), f"losses differ: clipprefix {a:.5f}, ClipCap {b:.5f}"
        ours.model.train(), ref.model.train()
        f_ours = flops(lambda: ours.step(order[0]))
        f_ref = flops(lambda: ref.step(ref_order[0]))
        times = {"clipprefix": [], "ClipCap": []}
        k = 1
        for _ in range(args.rounds):
            for name, fn, o in (("ClipCap", ref.step, ref_order), ("clipprefix", ours.step, order)):
                fn(o[k % len(o)])                                   # untimed: settles allocations
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for s in range(args.steps):
                    fn(o[(k + 1 + s) % len(o)])
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - t0) / args.steps)
            k += args.steps + 1
    trainable = sum(p.numel() for p in ours_model.parameters() if p.requires_grad)
    return {"recipe": recipe, "pad": max_len, "trainable": trainable, "loss_check": (a, b),
            "flops": {"clipprefix": f_ours, "ClipCap": f_ref},
            "samples_per_s": {n: B / statistics.median(t) for n, t in times.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=8, help="captions per step (ClipCap trained with 40)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"],
                    help="clipprefix autocast on GPUs (ClipCap trains in fp32)")
    ap.add_argument("--recipes", default="mlp-finetune,transformer-frozen")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 1
    data = make_data(args.items, 5)
    L = data.lengths.float()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch_size}, "
          f"{len(data)} captions: {int(L.min())}-{int(L.max())} tokens (mean {L.mean():.1f}); "
          f"ClipCap pads all to {clipcap_pad_length(data.lengths)}")
    results = []
    for recipe in args.recipes.split(","):
        r = run(recipe, data, args, args.device)
        results.append(r)
        sps, fl = r["samples_per_s"], r["flops"]
        print(f"{recipe:20s} trainable {r['trainable'] / 1e6:6.1f}M  loss check {r['loss_check'][0]:.4f} == "
              f"{r['loss_check'][1]:.4f}")
        print(f"{'':20s} ClipCap    {sps['ClipCap']:7.2f} samples/s  {fl['ClipCap'] / args.batch_size / 1e9:7.1f} GFLOP/sample")
        print(f"{'':20s} clipprefix {sps['clipprefix']:7.2f} samples/s  {fl['clipprefix'] / args.batch_size / 1e9:7.1f} "
              f"GFLOP/sample   speed x{sps['clipprefix'] / sps['ClipCap']:.2f}, work /{fl['ClipCap'] / fl['clipprefix']:.2f}")
    return results


if __name__ == "__main__":
    main()
