"""Decoding semantics, pinned with a scripted bigram LM and checked against a no-cache reference on GPT-2."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from clipprefix.core.decoding import generate
from clipprefix.core.generation import GenerationConfig
from clipprefix.base.errors import ClipPrefixError

V = 8
EOS = 7


class _Out:
    def __init__(self, logits, past):
        self.logits, self.past_key_values = logits, past


class _NoCache:
    """The bigram LM needs no cache; these are the cache operations decoding calls."""
    def batch_select_indices(self, idx): pass
    def reorder_cache(self, idx): pass
    def batch_repeat_interleave(self, n): pass


class BigramLM(torch.nn.Module):
    """Next-token logits depend only on the last input vector: one-hot token embeddings, a fixed table."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.emb = torch.nn.Embedding(V, V)
        self.emb.weight.data = torch.eye(V)
        self.calls = 0

    def get_input_embeddings(self):
        return self.emb

    def forward(self, inputs_embeds, past_key_values=None, use_cache=True, attention_mask=None, logits_to_keep=0):
        self.calls += 1
        state = inputs_embeds[:, -1].argmax(-1)
        return _Out(self.table[state][:, None], past_key_values or _NoCache())


def prefix_for(states):
    return torch.eye(V)[torch.tensor(states)][:, None]   # (B, 1, V): the prefix puts the LM in `state`


def chain_table():
    # state i -> i+1 most likely (logit 3), EOS from 5; other tokens logit 0
    t = torch.zeros(V, V)
    for i in range(V - 1):
        t[i, i + 1] = 3.0
    t[EOS, EOS] = 3.0
    return t


def test_greedy_follows_argmax_and_eos_stops_without_being_kept():
    lm = BigramLM(chain_table())
    out = generate(lm, prefix_for([0, 3]), GenerationConfig(max_new_tokens=20), eos_token_id=EOS)
    assert out[0][0].tokens == [1, 2, 3, 4, 5, 6]
    assert out[1][0].tokens == [4, 5, 6]
    assert len(out[0][0].logprobs) == 6 and all(lp < 0 for lp in out[0][0].logprobs)


def test_max_new_tokens_and_stop_at_eos_off():
    lm = BigramLM(chain_table())
    out = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=10, stop_at_eos=False), eos_token_id=EOS)
    assert out[0][0].tokens == [1, 2, 3, 4, 5, 6, 7, 7, 7, 7]


def test_stop_string_ends_and_is_kept():
    lm = BigramLM(chain_table())
    decode = lambda toks: "".join("abc.efgZ"[t] for t in toks)   # token 3 decodes to "."
    out = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=20, stop_strings=(".",)),
                   eos_token_id=EOS, decode=decode)
    assert out[0][0].tokens == [1, 2, 3]


def test_min_new_tokens_forbids_early_eos():
    t = torch.zeros(V, V)
    t[0, EOS] = 5.0
    t[0, 2] = 1.0
    t[2, EOS] = 5.0
    lm = BigramLM(t)
    assert generate(lm, prefix_for([0]), GenerationConfig(), eos_token_id=EOS)[0][0].tokens == []
    out = generate(lm, prefix_for([0]), GenerationConfig(min_new_tokens=1), eos_token_id=EOS)
    assert out[0][0].tokens == [2]


def test_temperature_does_not_change_greedy_or_beam():
    lm = BigramLM(torch.randn(V, V, generator=torch.Generator().manual_seed(0)))
    for strategy in ("greedy", "beam"):
        a = generate(lm, prefix_for([0, 1, 2]), GenerationConfig(strategy=strategy, max_new_tokens=6), eos_token_id=EOS)
        b = generate(lm, prefix_for([0, 1, 2]), GenerationConfig(strategy=strategy, max_new_tokens=6, temperature=0.1),
                     eos_token_id=EOS)
        assert [s[0].tokens for s in a] == [s[0].tokens for s in b]


def test_temperature_changes_sampling_distribution():
    t = torch.zeros(V, V)
    t[:, 1], t[:, 2] = 1.0, 0.0   # p(1) = e/(e+1+...) under T=1; T=0.05 makes it near-certain
    lm = BigramLM(t)
    cold = generate(lm, prefix_for([0] * 200), GenerationConfig(strategy="sample", max_new_tokens=1, temperature=0.05, seed=0),
                    eos_token_id=None)
    warm = generate(lm, prefix_for([0] * 200), GenerationConfig(strategy="sample", max_new_tokens=1, temperature=5.0, seed=0),
                    eos_token_id=None)
    share = lambda out: sum(s[0].tokens[0] == 1 for s in out) / len(out)
    assert share(cold) > 0.95 and share(warm) < 0.5


def test_sampling_reproducible_with_seed_and_differs_across_seeds():
    lm = BigramLM(torch.zeros(V, V))   # uniform: every seed gives another sequence
    cfg = GenerationConfig(strategy="sample", max_new_tokens=12, stop_at_eos=False)
    run = lambda seed: [s[0].tokens for s in generate(lm, prefix_for([0, 0]), cfg.updated(seed=seed), eos_token_id=EOS)]
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_top_k_one_equals_greedy_and_top_p_keeps_only_the_head():
    lm = BigramLM(torch.randn(V, V, generator=torch.Generator().manual_seed(1)))
    greedy = generate(lm, prefix_for([0, 4]), GenerationConfig(max_new_tokens=6), eos_token_id=EOS)
    topk = generate(lm, prefix_for([0, 4]), GenerationConfig(strategy="sample", top_k=1, max_new_tokens=6, seed=3),
                    eos_token_id=EOS)
    assert [s[0].tokens for s in greedy] == [s[0].tokens for s in topk]
    t = torch.full((V, V), -10.0)
    t[:, 1], t[:, 2] = 2.0, 1.9   # the two head tokens hold ~all mass; top_p=0.5 keeps only token 1
    out = generate(BigramLM(t), prefix_for([0] * 50), GenerationConfig(strategy="sample", top_p=0.5, max_new_tokens=1, seed=0),
                   eos_token_id=None)
    assert {s[0].tokens[0] for s in out} == {1}


def test_repetition_controls():
    t = torch.zeros(V, V)
    t[:, 1] = 3.0           # always wants token 1
    t[:, 2] = 2.0
    lm = BigramLM(t)
    plain = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=4, stop_at_eos=False), eos_token_id=EOS)
    assert plain[0][0].tokens == [1, 1, 1, 1]
    pen = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=2, repetition_penalty=2.0, stop_at_eos=False),
                   eos_token_id=EOS)
    assert pen[0][0].tokens == [1, 2]    # 3.0 / 2 = 1.5 < 2.0
    ngram = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=4, no_repeat_ngram_size=1, stop_at_eos=False),
                     eos_token_id=EOS)
    assert len(set(ngram[0][0].tokens)) == 4


def test_beam_finds_the_better_sequence_greedy_misses():
    # from 0: token 1 (logit 1.0) leads to a flat distribution; token 2 (0.9) leads to a certain EOS path
    t = torch.full((V, V), -5.0)
    t[0, 1], t[0, 2] = 1.0, 0.9
    t[1, :] = 0.0
    t[2, EOS] = 10.0
    lm = BigramLM(t)
    greedy = generate(lm, prefix_for([0]), GenerationConfig(max_new_tokens=2), eos_token_id=EOS)[0][0]
    beam = generate(lm, prefix_for([0]), GenerationConfig(strategy="beam", num_beams=3, max_new_tokens=2,
                                                          num_return_sequences=2), eos_token_id=EOS)[0]
    assert greedy.tokens[0] == 1
    assert beam[0].tokens == [2]
    assert len(beam) == 2 and beam[0].score >= beam[1].score


def test_invalid_options_raise_one_sentence_errors():
    lm = BigramLM(chain_table())
    for bad in (dict(strategy="nucleus"), dict(max_new_tokens=0), dict(temperature=0), dict(top_p=0),
                dict(strategy="beam", num_beams=2, num_return_sequences=3), dict(num_return_sequences=2)):
        with pytest.raises(ClipPrefixError):
            generate(lm, prefix_for([0]), GenerationConfig(**bad), eos_token_id=EOS)


# ---------------------------------------------------------------- real GPT-2 (tiny, random weights)
@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=97, n_positions=64,
                                      eos_token_id=96, bos_token_id=96)).eval()


def reference_greedy(lm, prefix, n):
    """ClipCap's loop: re-run the whole sequence at every step, no cache."""
    x, out = prefix, []
    for _ in range(n):
        tok = lm(inputs_embeds=x).logits[:, -1].argmax(-1)
        out.append(tok)
        x = torch.cat([x, lm.get_input_embeddings()(tok)[:, None]], dim=1)
    return torch.stack(out, 1).tolist()


def test_kv_cache_equals_no_cache(gpt2):
    prefix = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(1))
    out = generate(gpt2, prefix, GenerationConfig(max_new_tokens=12, stop_at_eos=False), eos_token_id=96)
    assert [s[0].tokens for s in out] == reference_greedy(gpt2, prefix, 12)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_batched_equals_one_by_one(gpt2, strategy):
    prefix = torch.randn(5, 4, 64, generator=torch.Generator().manual_seed(2))
    # a frequent token as EOS so rows finish at different steps and leave the batch
    cfg = GenerationConfig(strategy=strategy, num_beams=3, max_new_tokens=10, num_return_sequences=1)
    eos = generate(gpt2, prefix, cfg.updated(stop_at_eos=False), eos_token_id=None)[0][0].tokens[3]
    batched = generate(gpt2, prefix, cfg, eos_token_id=eos)
    single = [generate(gpt2, prefix[i:i + 1], cfg, eos_token_id=eos)[0] for i in range(5)]
    assert [s[0].tokens for s in batched] == [s[0].tokens for s in single]
    if strategy == "greedy":
        assert len({len(s[0].tokens) for s in batched}) > 1, "rows should finish at different lengths"
    for b, s in zip(batched, single):
        assert b[0].score == pytest.approx(s[0].score, abs=1e-4)


def test_beam_of_one_equals_greedy(gpt2):
    prefix = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(3))
    g = generate(gpt2, prefix, GenerationConfig(max_new_tokens=8, stop_at_eos=False), eos_token_id=None)
    b = generate(gpt2, prefix, GenerationConfig(strategy="beam", num_beams=1, max_new_tokens=8, stop_at_eos=False),
                 eos_token_id=None)
    assert [s[0].tokens for s in g] == [s[0].tokens for s in b]


def test_length_penalty_decides_between_a_short_and_a_long_caption():
    # from 0: EOS now (log p = -0.47) or token 1 (-0.97), after which 2 and EOS are certain (length 3)
    t = torch.full((V, V), -20.0)
    t[0, EOS], t[0, 1] = 0.5, 0.0
    t[1, 2] = 10.0
    t[2, EOS] = 10.0
    lm = BigramLM(t)
    beam = lambda lp: generate(lm, prefix_for([0]), GenerationConfig(strategy="beam", num_beams=2, max_new_tokens=5,
                                                                      length_penalty=lp), eos_token_id=EOS)[0][0]
    assert beam(0.0).tokens == []          # raw sums: -0.47 beats -0.97
    assert beam(1.0).tokens == [1, 2]      # per token: -0.97 / 3 beats -0.47 / 1
    assert beam(1.0).score == pytest.approx(sum(beam(1.0).logprobs) / 3, abs=1e-3)


def test_beam_stops_at_a_stop_string_and_keeps_it():
    decode = lambda toks: "".join("abc.efgZ"[t] for t in toks)
    out = generate(BigramLM(chain_table()), prefix_for([0]), GenerationConfig(strategy="beam", num_beams=2,
                   max_new_tokens=20, stop_strings=(".",)), eos_token_id=EOS, decode=decode)
    assert out[0][0].tokens == [1, 2, 3]


def test_sampling_returns_several_sequences_per_item():
    lm = BigramLM(torch.zeros(V, V))
    cfg = GenerationConfig(strategy="sample", num_return_sequences=3, max_new_tokens=8, stop_at_eos=False, seed=4)
    out = generate(lm, prefix_for([0, 5]), cfg, eos_token_id=EOS)
    assert [len(alts) for alts in out] == [3, 3]
    assert len({tuple(s.tokens) for alts in out for s in alts}) == 6          # uniform LM: all differ
    assert [[s.tokens for s in a] for a in out] == [[s.tokens for s in a] for a in generate(lm, prefix_for([0, 5]), cfg,
                                                                                             eos_token_id=EOS)]


def test_no_repeat_bigrams():
    t = torch.zeros(V, V)
    t[:, 1], t[:, 2] = 3.0, 2.0
    out = generate(BigramLM(t), prefix_for([0]), GenerationConfig(max_new_tokens=5, no_repeat_ngram_size=2,
                   stop_at_eos=False), eos_token_id=EOS)[0][0].tokens
    # 1 1, then "1 1" is taken so 2, then "2 1" is new so 1, then "1 1" and "1 2" are both taken: the best other, 0
    assert out == [1, 1, 2, 1, 0]


def test_repetition_penalty_pushes_negative_logits_further_down():
    t = torch.full((V, V), -5.0)
    t[:, 1], t[:, 2] = -1.0, -1.5
    lm = BigramLM(t)
    cfg = GenerationConfig(max_new_tokens=2, stop_at_eos=False)
    assert generate(lm, prefix_for([0]), cfg, eos_token_id=EOS)[0][0].tokens == [1, 1]
    # -1.0 * 2 = -2.0 < -1.5 (dividing a negative logit would have raised it instead)
    assert generate(lm, prefix_for([0]), cfg.updated(repetition_penalty=2.0), eos_token_id=EOS)[0][0].tokens == [1, 2]


@pytest.mark.parametrize("fused", [False, True], ids=["gelu_new", "fuse_gelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_written_out_gpt2_step_equals_transformers(gpt2, dtype, fused):
    """gpt2_step.py against GPT2LMHeadModel itself: same logits for the next token, with transformers' own
    activation and with the nn.GELU that ClipPrefixModel puts in (both fused into c_fc's product)."""
    import copy

    from clipprefix.core.kv_cache import start
    from clipprefix.fast.gpt2_step import gpt2_steps
    from clipprefix.fast.activations import fuse_gelu

    want_lm = copy.deepcopy(gpt2).to(dtype)
    lm = fuse_gelu(copy.deepcopy(want_lm)) if fused else want_lm
    steps = gpt2_steps(lm)
    assert steps is not None and steps.cpu and steps.blocks[0].qkv.weight.shape == (3 * 64, 64)   # (out, in) copies
    assert steps.blocks[0].fc_gelu is not None                              # the GELU went into c_fc's product
    prefix = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(4)).to(dtype)
    tokens = torch.tensor([5, 17, 90])
    with torch.inference_mode():
        first, cache, _ = start(lm, prefix, room=4)
        tol = 1e-4 if dtype == torch.float32 else 0.1
        torch.testing.assert_close(first, want_lm(inputs_embeds=prefix).logits[:, -1].float(), atol=tol, rtol=tol)
        ours = steps(tokens, cache)
        full = torch.cat([prefix, lm.get_input_embeddings()(tokens)[:, None]], dim=1)
        want = want_lm(inputs_embeds=full).logits[:, -1].float()
    torch.testing.assert_close(ours, want, atol=tol, rtol=tol)
    assert cache.layers[0].get_seq_length() == 6


def test_written_out_step_follows_weight_changes(gpt2):
    import copy

    from clipprefix.fast.gpt2_step import gpt2_steps

    lm = copy.deepcopy(gpt2)
    first = gpt2_steps(lm)
    assert gpt2_steps(lm) is first                       # built once per model
    c_attn = lm.transformer.h[0].attn.c_attn.weight
    with torch.no_grad():
        c_attn[3] += 1.0                                 # a training step changes a weight in place
    again = gpt2_steps(lm)

    def weight_seen_by(steps):     # the (possibly packed, opaque) copy, read back through its own linear
        eye = torch.eye(c_attn.shape[0])
        return steps.linear(eye, steps.blocks[0].qkv.weight, None)       # = weight (in, out), as Conv1D holds it

    with torch.inference_mode():
        assert again is not first and torch.equal(weight_seen_by(again), c_attn)
        assert not torch.equal(weight_seen_by(first), c_attn)          # the old copy was stale
