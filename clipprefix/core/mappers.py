"""Mapping networks: CLIP features (B, T, clip_dim) -> a prefix of LM embeddings (B, K, n_embd).

T is 1 for an image and the number of sampled frames for a video.

- `MLPMapper`: ClipCap's MLP `D -> n_embd*K/2 -> tanh -> n_embd*K` (frames mean-pooled first).
- `TransformerMapper`: ClipCap's transformer mapper, exactly (see shared/REFERENCE.md): the CLIP
  vector becomes `clip_length` tokens, K learned constants are appended, pre-LN blocks without
  positional embeddings run over all of them, the last K outputs are the prefix (frames mean-pooled).
- `VideoMapper`: frame order matters: each frame is projected to a token and gets a learned temporal
  position embedding; K learned queries are appended and the same pre-LN blocks run over all tokens;
  the last K outputs are the prefix.
- `EncoderMapper`: clip-gpt-captioning's mapper (nn.TransformerEncoder + Linear), kept only so its
  published weights can be converted; each image is its own sequence (the original let the images of
  a batch attend to each other).

Parameter names follow ClipCap's (`model.0`, `linear`, `prefix_const`, `transformer.layers.{i}.attn.to_queries`)
so converted state dicts load without renaming inside the mapper.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import ClipPrefixError

MAPPER_TYPES = ("mlp", "transformer", "video", "encoder")


@dataclass
class MapperConfig:
    type: str = "mlp"
    clip_dim: int = 512
    n_embd: int = 768           # LM embedding width
    prefix_length: int = 10     # K: prefix tokens handed to the LM
    clip_length: int = 10       # transformer mapper: tokens the CLIP vector is projected to
    num_layers: int = 8
    num_heads: int = 8
    mlp_ratio: float = 2.0
    max_frames: int = 32        # video mapper: temporal position table size
    hidden: int | None = None   # MLP hidden width; ClipCap uses n_embd*K//2
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MapperConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class MLPMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.k, self.n_embd = cfg.prefix_length, cfg.n_embd
        hidden = cfg.hidden or cfg.n_embd * cfg.prefix_length // 2
        self.model = nn.Sequential(nn.Linear(cfg.clip_dim, hidden), nn.Tanh(),
                                   nn.Linear(hidden, cfg.n_embd * cfg.prefix_length))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model(feats.mean(dim=1)).view(feats.shape[0], self.k, self.n_embd)


class MultiHeadAttention(nn.Module):
    """ClipCap attention: keys/values from one projection split as [keys | values], no positional info."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = self.to_queries(x).view(b, n, h, c // h).transpose(1, 2)           # (b, h, n, hd)
        kv = self.to_keys_values(x).view(b, n, 2, h, c // h)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             scale=self.scale)
        return self.project(out.transpose(1, 2).reshape(b, n, c))


class MlpBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(F.relu(self.fc1(x)))))


class TransformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dropout)
        self.mlp = MlpBlock(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))   # attention reads the LayerNorm-ed tokens
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.clip_length, self.n_embd = cfg.clip_length, cfg.n_embd
        self.linear = nn.Linear(cfg.clip_dim, cfg.clip_length * cfg.n_embd)
        self.prefix_const = nn.Parameter(torch.randn(cfg.prefix_length, cfg.n_embd))
        self.transformer = Transformer(cfg.n_embd, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio, cfg.dropout)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b = feats.shape[0]
        x = self.linear(feats.mean(dim=1)).view(b, self.clip_length, self.n_embd)
        x = torch.cat([x, self.prefix_const.unsqueeze(0).expand(b, -1, -1)], dim=1)
        return self.transformer(x)[:, self.clip_length:]


class VideoMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.max_frames = cfg.max_frames
        self.frame_proj = nn.Linear(cfg.clip_dim, cfg.n_embd)
        self.time_embed = nn.Parameter(torch.randn(cfg.max_frames, cfg.n_embd) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.prefix_length, cfg.n_embd) * 0.02)
        self.transformer = Transformer(cfg.n_embd, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio, cfg.dropout)
        self.k = cfg.prefix_length

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, t, _ = feats.shape
        if t > self.max_frames:
            raise ClipPrefixError(f"This video mapper takes at most {self.max_frames} frames, got {t}.")
        frames = self.frame_proj(feats) + self.time_embed[:t]
        x = torch.cat([frames, self.queries.unsqueeze(0).expand(b, -1, -1)], dim=1)
        return self.transformer(x)[:, -self.k:]


class EncoderMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.k, self.n_embd = cfg.prefix_length, cfg.n_embd
        layer = nn.TransformerEncoderLayer(cfg.clip_dim, cfg.num_heads, dim_feedforward=int(cfg.clip_dim * cfg.mlp_ratio),
                                           dropout=cfg.dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.mapper = nn.Linear(cfg.clip_dim, cfg.prefix_length * cfg.n_embd)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.transformer_encoder(feats.mean(dim=1, keepdim=True))[:, 0]   # each image alone
        return self.mapper(x).view(feats.shape[0], self.k, self.n_embd)


def build_mapper(cfg: MapperConfig) -> nn.Module:
    """The mapper named by `cfg.type`."""
    classes = {"mlp": MLPMapper, "transformer": TransformerMapper, "video": VideoMapper, "encoder": EncoderMapper}
    if cfg.type not in classes:
        raise ClipPrefixError(f"Unknown mapper type '{cfg.type}'; choose one of {', '.join(MAPPER_TYPES)}.")
    if cfg.n_embd % cfg.num_heads and cfg.type in ("transformer", "video"):
        raise ClipPrefixError(f"n_embd={cfg.n_embd} must be divisible by num_heads={cfg.num_heads}.")
    return classes[cfg.type](cfg)
