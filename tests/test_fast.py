"""The fast paths (`clipprefix.fast`) change speed, never results: with them on and off, a trained
captioner writes the same tokens and the same logits (to float rounding), and the encoder gives the same
features; off, the modules are the stock ones."""
import pytest
import torch
from torch import nn

from clipprefix import fast
from clipprefix.core.captioner import Captioner
from clipprefix.core.encoder import ClipEncoder
from clipprefix.fast.cpu_linear import CpuLinear, CpuMultiheadAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_switch_reads_the_environment_and_blocks(monkeypatch):
    monkeypatch.delenv("CLIPPREFIX_FAST", raising=False)
    assert fast.enabled()
    monkeypatch.setenv("CLIPPREFIX_FAST", "0")
    assert not fast.enabled() and fast.enabled(True)
    with fast.enabled_for(True):
        assert fast.enabled()
    monkeypatch.setenv("CLIPPREFIX_FAST", "1")
    with fast.disabled():
        assert not fast.enabled() and fast.enabled(True)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_captions_are_the_same_with_the_fast_paths_off(trained_tiny, strategy):
    cap, feats, refs = trained_tiny
    on = Captioner.from_pretrained(cap.folder, fast=True)
    off = Captioner.from_pretrained(cap.folder, fast=False)
    assert any(type(m).__name__ == "GELU" for m in on.model.lm.modules())                 # fused one-pass GELU
    assert any(type(m).__name__ == "NewGELUActivation" for m in off.model.lm.modules())   # transformers' own
    a = on.caption_features(feats, strategy=strategy, num_beams=3)
    b = off.caption_features(feats, strategy=strategy, num_beams=3)
    assert len({c.text for c in a}) >= 8                     # a trained model: captions follow the input
    assert [c.tokens for c in a] == [c.tokens for c in b]
    torch.testing.assert_close(torch.tensor([c.score for c in a]), torch.tensor([c.score for c in b]),
                               atol=1e-4, rtol=1e-4)


def test_encoder_is_stock_off_the_fast_paths_and_agrees_with_them():
    on, off = ClipEncoder.load("tiny", fast=True), ClipEncoder.load("tiny", fast=False)
    kinds = lambda enc: {type(m) for m in enc.model.modules()}   # noqa: E731
    assert CpuLinear in kinds(on) and CpuMultiheadAttention in kinds(on)
    assert not kinds(off) & {CpuLinear, CpuMultiheadAttention} and nn.Linear in kinds(off)
    images = [torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy() for _ in range(4)]
    torch.testing.assert_close(on.encode_images(images), off.encode_images(images), atol=1e-4, rtol=1e-4)
    on.fast = False
    on.to("cpu")                                     # re-placed: the stock classes come back, same weights
    assert not kinds(on) & {CpuLinear, CpuMultiheadAttention}
    assert on.model.state_dict().keys() == off.model.state_dict().keys()
    torch.testing.assert_close(on.encode_images(images), off.encode_images(images), atol=1e-5, rtol=1e-5)


def test_the_fast_step_sees_weights_a_fused_optimizer_changed(gpt2_small):
    """Fused AdamW updates parameters in place without bumping their version counters: the written-out
    step must still notice (it once kept decoding with the first epoch's packed weights)."""
    from clipprefix.core.kv_cache import start

    lm = gpt2_small
    prefix = torch.randn(2, 3, lm.config.n_embd, generator=torch.Generator().manual_seed(0))
    before = start(lm, prefix, room=1, fast=True).logits
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-2, fused=True)
    lm(inputs_embeds=prefix).logits.sum().backward()
    versions = [p._version for p in lm.parameters()]
    opt.step()
    assert [p._version for p in lm.parameters()] == versions          # the trap: nothing says they changed
    fast_after = start(lm, prefix, room=1, fast=True).logits
    stock_after = start(lm, prefix, room=1, fast=False).logits
    assert not torch.allclose(fast_after, before)
    torch.testing.assert_close(fast_after, stock_after, atol=1e-4, rtol=1e-4)


@pytest.fixture
def gpt2_small():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=64, n_layer=2, n_head=4)).eval()


def test_the_fast_step_runs_a_model_made_under_inference_mode():
    """Tensors made under torch.inference_mode() have no version counter; the cache keys must not need one."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from clipprefix.core.kv_cache import start

    with torch.inference_mode():
        torch.manual_seed(0)
        lm = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=64, n_layer=2, n_head=4)).eval()
        prefix = torch.randn(2, 3, 64)
        torch.testing.assert_close(start(lm, prefix, room=1, fast=True).logits,
                                   start(lm, prefix, room=1, fast=False).logits, atol=1e-4, rtol=1e-4)
