"""Published-checkpoint conversion: a ClipCap-format state dict (random weights, real key names and
shapes, old mask buffers included) converts and gives the same logits as a direct re-implementation
of the ClipCap model; clip-gpt-captioning likewise; pickled code is refused."""
import pytest
import torch
import torch.nn.functional as nnf
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from clipprefix.core.captioner import Captioner
from clipprefix.apps.cli import main
from clipprefix.core.convert import convert_file


# ------------------------------------------------------------------ ClipCap, as its authors wrote it
class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class MlpTransformer(nn.Module):
    def __init__(self, in_dim, h_dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, h_dim), nn.Linear(h_dim, in_dim)

    def forward(self, x):
        return self.fc2(nnf.relu(self.fc1(x)))


class MultiHeadAttention(nn.Module):
    def __init__(self, dim_self, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim_self // num_heads) ** -0.5
        self.to_queries = nn.Linear(dim_self, dim_self, bias=False)
        self.to_keys_values = nn.Linear(dim_self, dim_self * 2, bias=False)
        self.project = nn.Linear(dim_self, dim_self)

    def forward(self, x):
        b, n, c = x.shape
        queries = self.to_queries(x).reshape(b, n, self.num_heads, c // self.num_heads)
        keys_values = self.to_keys_values(x).reshape(b, n, 2, self.num_heads, c // self.num_heads)
        keys, values = keys_values[:, :, 0], keys_values[:, :, 1]
        attention = torch.einsum("bnhd,bmhd->bnmh", queries, keys) * self.scale
        attention = attention.softmax(dim=2)
        out = torch.einsum("bnmh,bmhd->bnhd", attention, values).reshape(b, n, c)
        return self.project(out)


class TransformerLayer(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.mlp = MlpTransformer(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim, num_heads, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(dim, num_heads) for _ in range(num_layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    def __init__(self, dim_clip, dim_embedding, prefix_length, clip_length, num_layers=8):
        super().__init__()
        self.clip_length = clip_length
        self.transformer = Transformer(dim_embedding, 8, num_layers)
        self.linear = nn.Linear(dim_clip, clip_length * dim_embedding)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, dim_embedding))

    def forward(self, x):
        x = self.linear(x).view(x.shape[0], self.clip_length, -1)
        prefix = self.prefix_const.unsqueeze(0).expand(x.shape[0], *self.prefix_const.shape)
        return self.transformer(torch.cat((x, prefix), dim=1))[:, self.clip_length:]


class ClipCaptionModel(nn.Module):
    def __init__(self, gpt, prefix_length, clip_length=None, prefix_size=512, num_layers=8, mapping="mlp"):
        super().__init__()
        self.prefix_length = prefix_length
        self.gpt = gpt
        e = gpt.transformer.wte.weight.shape[1]
        self.e = e
        if mapping == "mlp":
            self.clip_project = MLP((prefix_size, (e * prefix_length) // 2, e * prefix_length))
        else:
            self.clip_project = TransformerMapper(prefix_size, e, prefix_length, clip_length, num_layers)

    def forward(self, tokens, prefix):
        embedding_text = self.gpt.transformer.wte(tokens)
        proj = self.clip_project(prefix).view(-1, self.prefix_length, self.e)
        return self.gpt(inputs_embeds=torch.cat((proj, embedding_text), dim=1)).logits


def legacy_state_dict(model):
    """Add the mask buffers that old transformers saved and current transformers rejects."""
    sd = dict(model.state_dict())
    for i in range(model.gpt.config.n_layer):
        sd[f"gpt.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(1024, 1024, dtype=torch.uint8)).view(1, 1, 1024, 1024)
        sd[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return sd


def check_same_logits(reference, folder, prefix_size, normalized=False):
    cap = Captioner.from_pretrained(folder)
    feats = torch.randn(2, prefix_size, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[464, 3290, 318, 257], [32, 3797, 13, 50256]])
    with torch.no_grad():
        # ClipCap's transformer data were L2-normalised before they reached the model; ours normalises inside
        want = reference(tokens, nnf.normalize(feats, dim=-1) if normalized else feats)
        got = cap.model.logits(feats, tokens)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    return cap


def test_clipcap_mlp_checkpoint_converts_to_identical_logits(tmp_path):
    torch.manual_seed(0)
    ref = ClipCaptionModel(GPT2LMHeadModel(GPT2Config()), prefix_length=10).eval()   # GPT-2 small, real shapes
    sd = legacy_state_dict(ref)
    assert sd["clip_project.model.2.weight"].shape == (7680, 3840)
    torch.save(sd, tmp_path / "coco_weights.pt")
    assert main(["convert", str(tmp_path / "coco_weights.pt"), str(tmp_path / "ckpt")]) == 0
    cap = check_same_logits(ref, tmp_path / "ckpt", 512)
    assert cap.config["mapper"]["type"] == "mlp" and cap.config["lm"]["trainable"]
    assert cap.config["clip"] == {**cap.config["clip"], "model": "ViT-B-32", "pretrained": "openai", "normalize": False}
    assert cap.generation.stop_strings == (".",)


def test_clipcap_transformer_checkpoint_converts_to_identical_logits(tmp_path):
    torch.manual_seed(1)
    gpt = GPT2LMHeadModel(GPT2Config(n_layer=2))
    # K != clip_length, so swapping the two anywhere in the conversion changes shapes or logits
    ref = ClipCaptionModel(gpt, prefix_length=10, clip_length=6, prefix_size=640, num_layers=2,
                           mapping="transformer").eval()
    torch.save(legacy_state_dict(ref), tmp_path / "transformer_weights.pt")
    convert_file(tmp_path / "transformer_weights.pt", tmp_path / "ckpt")
    cap = check_same_logits(ref, tmp_path / "ckpt", 640, normalized=True)
    assert cap.config["clip"]["model"] == "RN50x4" and cap.config["clip"]["normalize"] is True
    assert cap.config["mapper"]["num_layers"] == 2 and not cap.config["lm"]["trainable"]
    assert (cap.config["mapper"]["prefix_length"], cap.config["mapper"]["clip_length"]) == (10, 6)


def test_clip_gpt_captioning_checkpoint_converts(tmp_path):
    torch.manual_seed(2)
    gpt = GPT2LMHeadModel(GPT2Config(n_layer=2)).eval()
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(768, 16, dim_feedforward=768 * 4, dropout=0.0,
                                                           batch_first=True), num_layers=6).eval()
    mapper = nn.Linear(768, 4 * 768)
    sd = {f"mp.transformer_encoder.{k}": v for k, v in enc.state_dict().items()}
    sd.update({f"mp.mapper.{k}": v for k, v in mapper.state_dict().items()})
    sd.update({f"td.model.{k}": v for k, v in gpt.state_dict().items()})
    sd["ie.model.vision_model.post_layernorm.weight"] = torch.ones(768)   # ignored: rebuilt from open_clip
    torch.save(sd, tmp_path / "model.pt")
    assert main(["convert", str(tmp_path / "model.pt"), str(tmp_path / "ckpt"), "--kind", "clip-gpt"]) == 0
    cap = Captioner.from_pretrained(tmp_path / "ckpt")
    assert cap.config["clip"]["output"] == "pooled" and cap.config["mapper"]["prefix_length"] == 4
    feats = torch.randn(3, 768)
    with torch.no_grad():
        # their mapper saw one image at a time: a 2-D (1, 768) input is one sequence of length 1
        want = torch.stack([mapper(enc(f[None])).view(4, 768) for f in feats])
        got = cap.model.prefix(feats)
    assert torch.allclose(got, want, atol=1e-5)


class Evil:
    """Unpickling this creates a file: proof that code ran."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("payload", ["pickle", "garbage", "empty"])
def test_bad_or_unsafe_files_are_refused_with_one_line(tmp_path, capsys, payload):
    f = tmp_path / "weights.pt"
    if payload == "pickle":
        torch.save({"gpt.x": Evil(tmp_path / "pwned")}, f)
    elif payload == "garbage":
        f.write_bytes(b"not a torch file at all")
    else:
        f.write_bytes(b"")
    assert main(["convert", str(f), str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert not (tmp_path / "pwned").exists(), "the pickle's code ran"
    assert out == "" and len(err.strip().splitlines()) == 1 and "weights.pt" in err
    assert not (tmp_path / "out").exists()
