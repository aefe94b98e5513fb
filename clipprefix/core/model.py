"""`ClipPrefixModel`: a mapper that turns CLIP features into a prefix, and a GPT-2-family causal LM.

    model = ClipPrefixModel(MapperConfig(...), lm)            # lm: a transformers causal LM
    loss = model(features, input_ids, attention_mask)          # features (B, T, clip_dim)

The LM is frozen (mapper-only training, ClipCap's transformer variant) unless `train_lm=True`
(ClipCap's MLP variant fine-tunes it). A frozen LM has its gradients turned off, and the loss computes
vocabulary logits only at positions that carry a label.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..fast import enabled as fast_enabled
from ..fast.activations import fuse_gelu
from .lm_input import IGNORE_INDEX, build_lm_input
from .mappers import MapperConfig, build_mapper


class ClipPrefixModel(nn.Module):
    def __init__(self, mapper_cfg: MapperConfig, lm: nn.Module, *, normalize: bool = False, train_lm: bool = False,
                 fast: bool | None = None):
        super().__init__()
        self.mapper_cfg = mapper_cfg
        self.mapper = build_mapper(mapper_cfg)
        self.lm = fuse_gelu(lm) if fast_enabled(fast) else lm     # GPT-2's GELU in one pass (clipprefix.fast)
        self.normalize = normalize
        self.set_train_lm(train_lm)

    # ------------------------------------------------------------------ parts
    def set_train_lm(self, train_lm: bool) -> None:
        self.train_lm = train_lm
        self.lm.requires_grad_(train_lm)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.train_lm:
            self.lm.eval()   # a frozen LM never uses dropout
        return self

    @property
    def embed_tokens(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def prefix(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP features (B, T, D) or (B, D) -> prefix embeddings (B, K, n_embd)."""
        if features.dim() == 2:
            features = features.unsqueeze(1)
        p = next(self.mapper.parameters())
        features = features.to(p.device, p.dtype)
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.mapper(features)

    def lm_input(self, features: torch.Tensor, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None):
        return build_lm_input(self.embed_tokens, self.prefix(features), input_ids, attention_mask)

    # ------------------------------------------------------------------ training
    def forward(self, features: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
        """Mean cross-entropy of the caption tokens given the prefix (labels -100 are ignored)."""
        x = self.lm_input(features, input_ids, attention_mask)
        hidden = self.lm.base_model(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask).last_hidden_state
        labels = x.labels[:, 1:]                     # the hidden state at i predicts token i+1
        keep = labels != IGNORE_INDEX
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), labels[keep], reduction=reduction)

    @torch.no_grad()
    def logits(self, features: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Full LM logits (B, K+L, vocab) for the prefix followed by `input_ids` (tests, scoring)."""
        x = self.lm_input(features, input_ids, attention_mask)
        return self.lm(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask).logits


def encode_captions(tokenizer, captions: Sequence[str], max_length: int | None = None,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise captions, append the end-of-text token, pad to the longest (dynamic padding).

    Returns `(input_ids, attention_mask)`; padded positions have mask 0 (they become label -100).
    """
    eos = tokenizer.eos_token_id
    ids = [tokenizer.encode(c.strip(), add_special_tokens=False) for c in captions]
    if max_length is not None:
        ids = [t[: max_length - 1] for t in ids]
    ids = [t + [eos] for t in ids]
    n = max(len(t) for t in ids)
    out = torch.full((len(ids), n), eos, dtype=torch.long)
    mask = torch.zeros((len(ids), n), dtype=torch.long)
    for i, t in enumerate(ids):
        out[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = 1
    return out.to(device), mask.to(device)
