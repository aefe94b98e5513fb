"""The one function that builds the language-model input, for the loss and for decoding alike.

    inputs_embeds = [prefix (B, K, n_embd) | wte(tokens) (B, L, n_embd)]
    attention_mask = [ones (B, K)          | token mask (B, L)]
    labels         = [-100 * K             | tokens, -100 where the mask is 0]

GPT-2 adds its own position embeddings to `inputs_embeds` (positions 0..K+L-1), so nothing here adds
them again; nothing is placed before the prefix (no BOS), in training or decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass
class LMInput:
    inputs_embeds: torch.Tensor      # (B, K+L, n_embd)
    attention_mask: torch.Tensor     # (B, K+L) long
    labels: torch.Tensor             # (B, K+L) long, IGNORE_INDEX where nothing is predicted


def build_lm_input(embed_tokens: torch.nn.Module, prefix: torch.Tensor, input_ids: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None) -> LMInput:
    """Concatenate the prefix with the embeddings of `input_ids` (which may be None or empty)."""
    b, k, _ = prefix.shape
    if input_ids is None:
        input_ids = torch.zeros(b, 0, dtype=torch.long, device=prefix.device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    tok = embed_tokens(input_ids).to(prefix.dtype)
    embeds = torch.cat([prefix, tok], dim=1)
    mask = torch.cat([torch.ones(b, k, dtype=attention_mask.dtype, device=prefix.device), attention_mask], dim=1)
    labels = torch.cat([torch.full((b, k), IGNORE_INDEX, dtype=torch.long, device=prefix.device),
                        input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)], dim=1)
    return LMInput(embeds, mask.long(), labels)
