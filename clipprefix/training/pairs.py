"""What one training step sees: every (item, caption) pair of a cache, tokenised once, and the order of an epoch.

Every caption of every item is one sample (ClipCap's choice; an epoch is all pairs once, shuffled by
(seed, epoch)); captions end with the LM's end-of-text token and pad to the longest in the micro-batch;
batches are drawn from windows of similar-length captions (less padding).
"""
from __future__ import annotations

import math

import torch

from ..base.errors import ClipPrefixError
from ..core.model import encode_captions
from ..data.cache import FeatureCache, stack_frames
from ..data.datasets import split_name


class CaptionPairs:
    """All (item, caption) pairs of some items: features (N, T, D) fp16 in memory, captions tokenised
    once (padded ids + lengths; a batch is cut to its own longest caption)."""

    def __init__(self, ids: list[str], features: torch.Tensor, references: list[list[str]], item: torch.Tensor,
                 tokens: torch.Tensor, lengths: torch.Tensor):
        self.ids, self.features, self.references = list(ids), features, references
        self.item, self.tokens, self.lengths = item, tokens, lengths    # per pair: item index, ids (P, L), lengths

    @classmethod
    def from_cache(cls, cache, ids: list[str], tokenizer, *, max_tokens: int | None = None,
                   num_frames: int | None = None) -> "CaptionPairs":
        if not ids:
            raise ClipPrefixError(f"Feature cache {cache.root} has no items to train or validate on.")
        references = [cache.captions(i) for i in ids]
        item = [k for k, refs in enumerate(references) for _ in refs]
        caps = [c for refs in references for c in refs]
        if not caps:
            raise ClipPrefixError(f"The items of {cache.root} carry no captions to train on.")
        chunks = [encode_captions(tokenizer, caps[i:i + 8192], max_length=max_tokens) for i in range(0, len(caps), 8192)]
        width = max(c[0].shape[1] for c in chunks)
        tokens = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1])) for t, _ in chunks])
        lengths = torch.cat([m.sum(1) for _, m in chunks])
        feats = stack_frames([cache.features(i) for i in ids], num_frames)
        return cls(ids, feats, references, torch.tensor(item), tokens, lengths)

    def __len__(self) -> int:
        return len(self.item)

    def batch(self, idx: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (B, T, D) float32, token ids (B, L) and mask (B, L), L = longest caption in the batch."""
        n = int(self.lengths[idx].max())
        mask = (torch.arange(n)[None] < self.lengths[idx, None]).long()
        return (self.features[self.item[idx]].float().to(device), self.tokens[idx, :n].to(device), mask.to(device))




def epoch_order(lengths: torch.Tensor, epoch: int, seed: int, global_batch: int, group_by_length: bool) -> torch.Tensor:
    """Pair indices for one epoch as (steps, global_batch): a permutation fixed by (seed, epoch), padded
    by wrapping around to whole batches; with `group_by_length`, windows of 64 batches are sorted by
    caption length before cutting (batches of similar lengths, in shuffled order)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n = len(lengths)
    perm = torch.randperm(n, generator=g)
    steps = math.ceil(n / global_batch)
    perm = torch.cat([perm, perm[: steps * global_batch - n]]) if steps * global_batch > n else perm
    while len(perm) < steps * global_batch:   # fewer pairs than one batch
        perm = torch.cat([perm, perm])[: steps * global_batch]
    if group_by_length:
        window = 64 * global_batch
        parts = []
        for i in range(0, len(perm), window):
            w = perm[i:i + window]
            parts.append(w[torch.sort(lengths[w], stable=True).indices])
        perm = torch.cat(parts)
        perm = perm.view(steps, global_batch)[torch.randperm(steps, generator=g)]
    return perm.view(steps, global_batch)


def split_ids(cache, split: str | None, exclude: str | None = None) -> list[str]:
    """Ids of `cache`'s items in `split` (None/'all': every item), without those of split `exclude`."""
    want = split_name(split) if split else None
    drop = split_name(exclude) if exclude else None
    return [i for i in cache.ids
            if (want in (None, "all") or cache.split_of(i) == want) and (drop is None or cache.split_of(i) != drop)]


def training_data(cap, cfg) -> tuple[CaptionPairs, CaptionPairs | None, dict]:
    """The training and validation pairs a `TrainConfig` names for captioner `cap` (each cache checked to
    hold what its mapper reads), and what the checkpoint records about them."""
    train_cache = FeatureCache.open(cfg.cache)
    cap.check_cache(train_cache)
    val_cache, val_ids = None, []
    if cfg.val_cache:
        val_cache = FeatureCache.open(cfg.val_cache)
        cap.check_cache(val_cache)
        val_ids = list(val_cache.ids)
    elif train_cache.meta.get("split") == "all":
        val_cache, val_ids = train_cache, split_ids(train_cache, cfg.val_split)
    exclude = cfg.val_split if val_cache is train_cache else None
    train_split = cfg.train_split or ("train" if train_cache.meta.get("split") == "all" else None)
    train_ids = split_ids(train_cache, train_split, exclude=exclude)
    tok, mapper = cap.tokenizer, cap.model.mapper_cfg
    n_frames = cfg.num_frames
    if n_frames is None and mapper.type == "video" and train_ids:
        n_frames = min(mapper.max_frames, max(train_cache.features(train_ids[0]).shape[0], 1))
    train = CaptionPairs.from_cache(train_cache, train_ids, tok, max_tokens=cfg.max_tokens, num_frames=n_frames)
    val = CaptionPairs.from_cache(val_cache, val_ids, tok, max_tokens=cfg.max_tokens,
                                  num_frames=train.features.shape[1]) if val_ids else None
    meta = {"cache": str(cfg.cache), "dataset": train_cache.meta.get("dataset"), "split": train_cache.meta.get("split"),
            "encoder": train_cache.meta.get("encoder"), "sampling": train_cache.meta.get("sampling"),
            "n_frames": int(train.features.shape[1])}
    return train, val, meta
