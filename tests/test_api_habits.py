"""What transformers users type works: num_beams alone, do_sample, one image, dtype names, Hub options,
device="auto", and loading leaves the session's transformers settings alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.utils import logging as hf_logging

from clipprefix import Captioner, synthetic
from clipprefix.base.errors import ClipPrefixError
from clipprefix.core import captioner as captioner_module
from clipprefix.core import encoder as encoder_module
from clipprefix.core.generation import GenerationConfig


def tokens(caps):
    return [c.tokens for c in caps]


def test_num_beams_alone_means_beam_search(trained_tiny):
    cap, feats, _ = trained_tiny
    f = feats[:6]
    implicit = cap.caption_features(f, num_beams=3, num_return_sequences=3)   # greedy would refuse 3 returns
    explicit = cap.caption_features(f, strategy="beam", num_beams=3, num_return_sequences=3)
    assert tokens(implicit) == tokens(explicit) and all(len(c.alternatives) == 2 for c in implicit)
    assert [c.score for c in implicit] == [c.score for c in explicit]
    # num_beams=1 undoes a beam default; an explicit strategy wins over num_beams
    beam_default = GenerationConfig(strategy="beam")
    assert beam_default.updated(num_beams=1).strategy == "greedy"
    assert GenerationConfig().updated(num_beams=4, strategy="greedy").strategy == "greedy"


def test_do_sample_means_sampling_or_is_refused_in_one_sentence(trained_tiny):
    cap, feats, _ = trained_tiny
    f = feats[:6]
    sampled = cap.caption_features(f, do_sample=True, seed=3, temperature=1.5)
    assert tokens(sampled) == tokens(cap.caption_features(f, strategy="sample", seed=3, temperature=1.5))
    assert tokens(cap.caption_features(f, do_sample=False)) == tokens(cap.caption_features(f, strategy="greedy"))
    assert GenerationConfig().updated(do_sample=False, num_beams=4).strategy == "beam"
    with pytest.raises(ClipPrefixError, match="do_sample=True contradicts strategy='beam'"):
        cap.caption_features(f, do_sample=True, strategy="beam")
    with pytest.raises(ClipPrefixError, match=r"Unknown decoding option num_beam; known: strategy, .*num_beams"):
        cap.caption_features(f, num_beam=5)


def test_one_image_is_a_list_of_one(trained_tiny, tmp_path):
    cap = trained_tiny[0]
    img = synthetic.draw_still(synthetic.STILLS[5], np.random.default_rng(0))
    Image.fromarray(img).save(tmp_path / "cat.png")
    want = tokens(cap.caption_images([str(tmp_path / "cat.png")]))
    for one in (str(tmp_path / "cat.png"), tmp_path / "cat.png", Image.open(tmp_path / "cat.png"), img):
        got = cap.caption_images(one)
        assert len(got) == 1 and tokens(got) == want, type(one)
    assert cap.encode_images(img).shape == (1, cap.model.mapper_cfg.clip_dim)
    assert len(cap.caption_images(np.stack([img, img]))) == 2      # an (N, H, W, 3) array is N images


@pytest.mark.parametrize("name", ["bfloat16", "bf16"])
def test_dtype_names_work(name):
    cap = Captioner.from_pretrained("tiny", dtype=name)
    assert cap.dtype == torch.bfloat16 and next(cap.model.mapper.parameters()).dtype == torch.bfloat16
    assert cap.to(dtype="float32").dtype == torch.float32
    with pytest.raises(ClipPrefixError, match="dtype must be auto, fp32, bf16 or fp16 .* got 'float64'"):
        Captioner.from_pretrained("tiny", dtype="float64")


def test_revision_token_and_cache_dir_go_to_the_hub(tmp_path, monkeypatch):
    """A Hub id is fetched with the caller's revision, token and cache folder (huggingface_hub faked)."""
    from clipprefix.base import hub

    folder = Captioner.from_pretrained("tiny").save_pretrained(tmp_path / "snapshot")
    calls = []

    def fake_snapshot_download(repo_id, **kw):
        calls.append((repo_id, kw))
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    cap = Captioner.from_pretrained("me/captioner", revision="v1.0", token="hf_x", cache_dir=tmp_path / "hf")
    assert cap.folder == folder
    repo, kw = calls[0]
    assert repo == "me/captioner" and (kw["revision"], kw["token"], kw["cache_dir"]) == ("v1.0", "hf_x", tmp_path / "hf")


def test_device_auto_is_the_default_everywhere(monkeypatch):
    """Captioner, ClipEncoder and evaluate ask for the best device ("auto": the GPU when there is one)."""
    from clipprefix.base.devices import resolve_device
    from clipprefix.evaluation import evaluate as evaluate_module

    asked = []

    def spy(device="auto"):
        asked.append(str(device))
        return resolve_device("cpu")

    monkeypatch.setattr(captioner_module, "resolve_device", spy)
    monkeypatch.setattr(encoder_module, "resolve_device", spy)
    cap = Captioner.from_pretrained("tiny")
    cap.encoder                                # the CLIP tower, loaded on first use
    encoder_module.ClipEncoder.load("tiny")
    assert asked[0] == "auto" and asked[-1] == "auto" and len(asked) >= 3

    class Stop(Exception):
        pass

    def loader(name, **kw):
        raise Stop(kw)

    monkeypatch.setattr(evaluate_module.Captioner, "from_pretrained", loader)
    with pytest.raises(Stop) as e:
        evaluate_module.evaluate("some/checkpoint", "some-cache")
    assert e.value.args[0]["device"] == "auto"


def test_loading_leaves_transformers_settings_as_they_were(tmp_path):
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    try:
        cap = Captioner.from_pretrained("tiny")
        cap.caption_features(torch.zeros(1, 1, cap.model.mapper_cfg.clip_dim))   # loads the tokenizer
        cap.save_pretrained(tmp_path / "again")
        assert hf_logging.get_verbosity() == hf_logging.WARNING
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity_warning()
        hf_logging.enable_progress_bar()
