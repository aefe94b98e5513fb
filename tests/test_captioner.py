"""Captioner: presets, checkpoints round trip, images and features through one path, clear failures."""
import json
import os

import numpy as np
import pytest
import torch

from clipprefix import Captioner, synthetic
from clipprefix.base.errors import ClipPrefixError
from clipprefix.core.captioner import new_captioner


@pytest.fixture(scope="module")
def cap():
    return Captioner.from_pretrained("tiny")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [synthetic.draw_still(s, rng) for s in synthetic.STILLS[:6]]


def test_images_and_their_features_give_the_same_captions(cap, images):
    by_image = cap.caption_images(images, max_new_tokens=8)
    feats = cap.encode_images(images)
    by_feats = cap.caption_features(feats, max_new_tokens=8)
    by_frames = cap.caption_features([f[None] for f in feats], max_new_tokens=8)   # list of (T=1, D)
    assert [c.tokens for c in by_image] == [c.tokens for c in by_feats] == [c.tokens for c in by_frames]
    c = by_image[0]
    assert len(c.tokens) == len(c.logprobs) and c.score == pytest.approx(np.mean(c.logprobs))
    assert c.text == cap.decode(c.tokens)


def test_batch_size_does_not_change_captions(cap, images):
    a = cap.caption_images(images, batch_size=2, strategy="beam", num_beams=3, max_new_tokens=6)
    b = cap.caption_images(images, batch_size=6, strategy="beam", num_beams=3, max_new_tokens=6)
    assert [x.tokens for x in a] == [x.tokens for x in b]


def test_alternatives_are_returned_sorted(cap, images):
    c = cap.caption_images(images[:1], strategy="beam", num_beams=4, num_return_sequences=3, max_new_tokens=5)[0]
    scores = [c.score] + [a["score"] for a in c.alternatives]
    assert len(c.alternatives) == 2 and scores == sorted(scores, reverse=True)


def test_save_and_reload_gives_identical_outputs(tmp_path, images):
    cap = new_captioner("tiny-video", seed=3)
    cap.generation = cap.generation.updated(max_new_tokens=7)
    path = cap.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format"] == "clipprefix" and cfg["mapper"]["type"] == "video" and cfg["lm"]["included"]
    assert {p.name for p in path.iterdir()} >= {"config.json", "model.safetensors", "lm", "tokenizer", "clip"}
    again = Captioner.from_pretrained(path)
    assert again.generation.max_new_tokens == 7
    feats = torch.randn(3, 5, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(cap.model.prefix(feats), again.model.prefix(feats))
    assert [c.tokens for c in cap.caption_features(feats)] == [c.tokens for c in again.caption_features(feats)]
    assert [c.tokens for c in cap.caption_videos([images[:3]])] == [c.tokens for c in again.caption_videos([images[:3]])]


def test_fine_tuned_lm_is_stored_and_frozen_one_by_name(tmp_path):
    cap = new_captioner("tiny")
    cap.model.set_train_lm(True)
    cap.config["lm"]["trainable"] = True
    with torch.no_grad():
        cap.model.lm.transformer.wte.weight[0] += 1.0
    again = Captioner.from_pretrained(cap.save_pretrained(tmp_path / "tuned"))
    assert torch.equal(again.model.lm.transformer.wte.weight, cap.model.lm.transformer.wte.weight)
    assert (tmp_path / "tuned" / "lm").is_dir()

    # a frozen LM with a name is referenced, not copied: here a local folder stands in for "gpt2" on the Hub
    frozen = new_captioner("tiny")
    frozen.model.lm.save_pretrained(tmp_path / "my-gpt2")
    frozen.config["lm"] = {"name": str(tmp_path / "my-gpt2"), "trainable": False}
    path = frozen.save_pretrained(tmp_path / "frozen")
    assert not (path / "lm").exists()
    assert json.loads((path / "config.json").read_text())["lm"]["name"] == str(tmp_path / "my-gpt2")
    again = Captioner.from_pretrained(path)
    assert torch.equal(again.model.lm.transformer.wte.weight, frozen.model.lm.transformer.wte.weight)
    assert not any(p.requires_grad for p in again.model.lm.parameters())


def test_a_save_killed_between_its_renames_loses_nothing(tmp_path):
    from clipprefix.core.presets import resolve

    path = new_captioner("tiny").save_pretrained(tmp_path / "ckpt")
    os.rename(path, tmp_path / ".ckpt.old-12345")   # the state a kill -9 between the two renames leaves
    assert resolve(tmp_path / "ckpt") == path and (path / "config.json").is_file()
    assert oct(path.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_bf16_weights_decode(cap, images):
    bf = Captioner.from_pretrained("tiny", dtype=torch.bfloat16)
    out = bf.caption_images(images[:2], max_new_tokens=5)
    assert bf.model.lm.transformer.wte.weight.dtype == torch.bfloat16
    assert bf.encoder.dtype == torch.bfloat16                                  # CLIP follows the captioner
    assert next(bf.encoder.model.parameters()).dtype == torch.bfloat16
    assert len(out) == 2 and all(1 <= len(c.tokens) <= 5 for c in out)
    bf.to(dtype=torch.float32)                                                 # and moves with it
    assert next(bf.encoder.model.parameters()).dtype == torch.float32 and bf.encoder.dtype == torch.float32
    assert [c.text for c in bf.caption_images(images[:2])] == [c.text for c in cap.caption_images(images[:2])]


def test_missing_corrupt_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(ClipPrefixError, match="No checkpoint"):
        Captioner.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipPrefixError, match="no config.json"):
        Captioner.from_pretrained(tmp_path / "empty")
    good = new_captioner("tiny").save_pretrained(tmp_path / "good")
    (good / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ClipPrefixError, match="corrupt or truncated"):
        Captioner.from_pretrained(good)
    other = new_captioner("tiny").save_pretrained(tmp_path / "other")
    cfg = json.loads((other / "config.json").read_text())
    cfg["mapper"]["prefix_length"] = 7
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ClipPrefixError, match="do not match"):
        Captioner.from_pretrained(other)


def test_published_preset_offline_is_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPPREFIX_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipPrefixError) as e:
        Captioner.from_pretrained("clipcap-coco")
    msg = str(e.value)
    assert "coco_weights.pt" in msg and "HF_HUB_OFFLINE" in msg and "\n" not in msg
    assert not (tmp_path / "presets" / "clipcap-coco").exists()


def test_hub_id_offline_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipPrefixError, match="someone/some-captioner"):
        Captioner.from_pretrained("someone/some-captioner")


def test_push_to_hub_uploads_the_checkpoint_folder_with_a_model_card(tmp_path, monkeypatch):
    """push_to_hub writes a checkpoint and a model card and hands the folder to huggingface_hub (network
    faked); a card already on the Hub is kept unless replace_card."""
    import huggingface_hub

    seen = {}

    class FakeApi:
        card_on_hub = False

        def __init__(self, token=None): pass
        def create_repo(self, repo_id, private=False, exist_ok=True):
            return f"https://huggingface.co/{repo_id}"
        def file_exists(self, repo_id, filename):
            return self.card_on_hub and filename == "README.md"
        def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns=None):
            from pathlib import Path
            seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            seen["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            seen["card"] = (Path(folder_path) / "README.md").read_text()
            seen["ignored"] = ignore_patterns

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    cap = new_captioner("tiny")
    cap.config["training"] = {"dataset": "coco", "split": "all", "cache": "data/processed/features/coco_all",
                              "train_config": {"epochs": 7, "lr": 0.001}}
    url = cap.push_to_hub("me/tiny-captioner", metrics={"CIDEr": 1.234, "BLEU-4": 0.3})
    assert url.endswith("me/tiny-captioner")
    assert "model.safetensors" in seen["files"] and seen["config"]["format"] == "clipprefix"
    card = seen["card"]
    assert card.startswith("---\nlibrary_name: clipprefix\npipeline_tag: image-to-text\n") and "datasets:\n- coco" in card
    assert "| mapper | mlp, prefix of 4 embeddings from 128-d features |" in card
    assert "- epochs: 7" in card and "- lr: 0.001" in card and "- cache: data/processed/features/coco_all" in card
    assert "| CIDEr | BLEU-4 |" in card and "| 123.40 | 30.00 |" in card
    assert 'Captioner.from_pretrained("me/tiny-captioner")' in card and seen["ignored"] is None
    FakeApi.card_on_hub = True
    cap.push_to_hub("me/tiny-captioner")
    assert seen["ignored"] == ["README.md"]          # the owner's card on the Hub stays
    cap.push_to_hub("me/tiny-captioner", replace_card=True)
    assert seen["ignored"] is None


def test_clipprefix_push_puts_an_evaluations_scores_in_the_card(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from clipprefix.apps.cli import main

    cards = []

    class FakeApi:
        def __init__(self, token=None): pass
        def create_repo(self, repo_id, private=False, exist_ok=True):
            return f"https://huggingface.co/{repo_id}"
        def file_exists(self, repo_id, filename):
            return False
        def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns=None):
            from pathlib import Path
            cards.append((Path(folder_path) / "README.md").read_text())

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    ckpt = new_captioner("tiny").save_pretrained(tmp_path / "ckpt")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"CIDEr": 0.5}, "dataset": "msrvtt",
                                                                "split": "test", "n_items": 12}))
    assert main(["push", str(ckpt), "me/x", "--metrics", str(tmp_path / "eval")]) == 0
    assert "Scores x 100 (dataset msrvtt, split test, n_items 12)" in cards[0] and "| 50.00 |" in cards[0]
    (tmp_path / "eval" / "metrics.json").write_text("{not json")
    assert main(["push", str(ckpt), "me/x", "--metrics", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as an evaluation's metrics.json" in err and "Traceback" not in err
