"""The LM input and the loss: one builder for training and decoding, a loss equal to hand-written CE."""
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from clipprefix.core.lm_input import IGNORE_INDEX, build_lm_input
from clipprefix.core.mappers import MapperConfig
from clipprefix.core.model import ClipPrefixModel, encode_captions


def make_model(train_lm=False, mapper="mlp"):
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=32))
    return ClipPrefixModel(MapperConfig(type=mapper, clip_dim=16, n_embd=32, prefix_length=3, clip_length=2,
                                        num_layers=1, num_heads=2), lm, train_lm=train_lm).eval()


def test_lm_input_layout():
    emb = torch.nn.Embedding(50, 8)
    prefix = torch.randn(2, 3, 8)
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    x = build_lm_input(emb, prefix, ids, mask)
    assert torch.equal(x.inputs_embeds[:, :3], prefix)
    assert torch.equal(x.inputs_embeds[:, 3:], emb(ids))
    assert x.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
    assert x.labels.tolist() == [[IGNORE_INDEX] * 3 + [5, 6, 7], [IGNORE_INDEX] * 3 + [8, 9, IGNORE_INDEX]]


def test_loss_equals_hand_written_cross_entropy():
    model = make_model()
    feats = torch.randn(2, 1, 16)
    ids = torch.tensor([[5, 6, 7, 49], [8, 9, 49, 49]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    loss = model(feats, ids, mask)
    # by hand: run GPT-2 on [prefix | wte(ids)] and score caption token j with the logits at K-1+j
    prefix = model.mapper(feats)
    logits = model.lm(inputs_embeds=torch.cat([prefix, model.lm.transformer.wte(ids)], 1),
                      attention_mask=torch.cat([torch.ones(2, 3, dtype=torch.long), mask], 1)).logits
    terms = [F.cross_entropy(logits[b, 3 - 1 + j][None], ids[b, j][None])
             for b in range(2) for j in range(4) if mask[b, j]]
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    # and the same as transformers' own shifted loss with -100 labels
    x = model.lm_input(feats, ids, mask)
    hf = model.lm(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask, labels=x.labels).loss
    assert torch.allclose(loss, hf, atol=1e-5)


def test_position_embeddings_added_once():
    model = make_model()
    feats = torch.randn(1, 1, 16)
    ids = torch.tensor([[4, 5]])
    got = model.logits(feats, ids)
    lm = model.lm
    h = torch.cat([model.mapper(feats), lm.transformer.wte(ids)], 1) + lm.transformer.wpe(torch.arange(5))
    for block in lm.transformer.h:
        out = block(h)
        h = out[0] if isinstance(out, tuple) else out
    want = lm.lm_head(lm.transformer.ln_f(h))
    assert torch.allclose(got, want, atol=1e-5)


def test_frozen_lm_gets_no_gradients_and_fine_tuned_does():
    frozen = make_model(train_lm=False).train()
    frozen(torch.randn(2, 1, 16), torch.tensor([[1, 2], [3, 4]])).backward()
    assert all(p.grad is None for p in frozen.lm.parameters())
    assert all(p.grad is not None for p in frozen.mapper.parameters())
    assert not frozen.lm.training, "a frozen LM stays in eval mode (no dropout)"
    tuned = make_model(train_lm=True).train()
    tuned(torch.randn(2, 1, 16), torch.tensor([[1, 2], [3, 4]])).backward()
    assert tuned.lm.transformer.wte.weight.grad is not None


def test_encode_captions_appends_eos_and_pads_dynamically():
    class Tok:
        eos_token_id = 99
        def encode(self, text, add_special_tokens=False):
            return [len(w) for w in text.split()]
    ids, mask = encode_captions(Tok(), ["a bb ccc", "dddd"])
    assert ids.tolist() == [[1, 2, 3, 99], [4, 99, 99, 99]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
