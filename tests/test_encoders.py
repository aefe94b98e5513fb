"""ClipEncoder: the model's own preprocessing, batched; arrays and PIL alike; bad images rejected."""
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipprefix.core.encoder import ClipEncoder
from clipprefix.base.errors import ClipPrefixError


@pytest.fixture(scope="module")
def enc():
    return ClipEncoder.load("tiny")


def test_preprocess_matches_open_clip_transform(enc):
    tf = open_clip.image_transform(enc.pre.size, is_train=False, mean=enc.pre.mean, std=enc.pre.std)
    rng = np.random.default_rng(0)
    arrs = [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in ((96, 96, 3), (90, 160, 3), (200, 70, 3))]
    batched = enc.preprocess(arrs)                      # resized on a thread pool
    for arr, b in zip(arrs, batched):
        ours = enc.preprocess([arr])[0]
        theirs = tf(Image.fromarray(arr))
        assert ours.shape == theirs.shape == (3, 64, 64)
        assert torch.allclose(ours, theirs, atol=1e-5) and torch.equal(b, ours)


def test_arrays_and_pil_give_the_same_features_and_normalisation(enc):
    arr = np.random.default_rng(1).integers(0, 256, size=(80, 100, 3), dtype=np.uint8)
    a = enc.encode_images([arr, Image.fromarray(arr)])
    assert a.shape == (2, enc.embed_dim) and torch.allclose(a[0], a[1])
    norm = ClipEncoder.load("tiny", normalize=True).encode_images([arr])
    assert torch.allclose(norm.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert torch.allclose(norm[0], a[0] / a[0].norm(), atol=1e-5)


def test_batching_does_not_change_features(enc):
    imgs = [np.random.default_rng(i).integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for i in range(5)]
    assert torch.allclose(enc.encode_images(imgs, batch_size=2), enc.encode_images(imgs, batch_size=5), atol=1e-5)


def test_pooled_output_drops_the_projection():
    pooled = ClipEncoder.load("tiny", output="pooled")
    assert pooled.embed_dim == 128 and pooled.spec["output"] == "pooled"   # tiny width == embed_dim
    assert pooled.model.visual.proj is None


def test_text_features_are_normalised(enc):
    t = enc.encode_text(["a red circle on the left", "two blue squares at the top"])
    assert t.shape == (2, enc.embed_dim) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_bad_inputs(enc):
    with pytest.raises(ClipPrefixError):
        enc.encode_images([np.zeros((8, 8, 2), dtype=np.float32)])     # float pictures are fine; 2 channels are not
    with pytest.raises(ClipPrefixError):
        enc.encode_images(["not-an-image-object"])
    with pytest.raises(ClipPrefixError):
        ClipEncoder.load("ViT-B-32", "no-such-tag")
    with pytest.raises(ClipPrefixError, match="HF_HUB_OFFLINE|internet"):
        ClipEncoder.load("ViT-B-32", "openai", cache_dir="/nonexistent-cache-dir")


def test_tiny_clip_knows_the_synthetic_world(enc):
    """The tiny tower was pretrained: zero-shot it matches held-out drawings to their captions."""
    from clipprefix import synthetic

    rng = np.random.default_rng(12345)
    stills = synthetic.STILLS
    img = torch.nn.functional.normalize(enc.encode_images([synthetic.draw_still(s, rng) for s in stills]), dim=-1)
    txt = enc.encode_text([s.caption() for s in stills])
    acc = (img @ txt.T).argmax(-1).eq(torch.arange(len(stills))).float().mean().item()
    assert acc > 0.6, acc    # chance is 1/96


@pytest.mark.parametrize("tag, quick", [("openai", True), ("laion2b_s34b_b79k", False)])
def test_openai_weights_get_the_quick_gelu_they_were_trained_with(monkeypatch, tag, quick):
    """open_clip 3 builds ViT-B-32 with nn.GELU and only warns when OpenAI's QuickGELU-trained weights are
    loaded into it; the encoder must ask for QuickGELU itself (no download here: the tiny tower stands in)."""
    from clipprefix.synthetic.tiny import clip_dir

    real, seen = open_clip.create_model, {}

    def fake(name, pretrained=None, **kw):
        seen.update(name=name, pretrained=pretrained, **kw)
        return real(f"local-dir:{clip_dir()}", force_quick_gelu=kw.get("force_quick_gelu", False))

    monkeypatch.setattr(open_clip, "create_model", fake)
    enc = ClipEncoder.load("ViT-B-32", tag)
    assert seen["name"] == "ViT-B-32" and seen["pretrained"] == tag
    assert seen.get("force_quick_gelu", False) is quick
    quick_layers = [m for m in enc.model.modules()      # QuickGELU modules, or linears that took one in
                    if type(m).__name__ == "QuickGELU" or getattr(m, "gelu", None) == "quick"]
    assert bool(quick_layers) is quick
    assert (enc.spec.get("activation") == "quick_gelu") is quick   # caches made with plain GELU are refused


def test_quick_gelu_changes_features():
    """The activation matters: the same weights with GELU and QuickGELU give different features."""
    from clipprefix.synthetic.tiny import clip_dir

    torch.manual_seed(0)
    a = open_clip.create_model(f"local-dir:{clip_dir()}").eval()
    b = open_clip.create_model(f"local-dir:{clip_dir()}", force_quick_gelu=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, a.visual.image_size[0], a.visual.image_size[0])
    with torch.inference_mode():
        assert (a.encode_image(x) - b.encode_image(x)).abs().max() > 1e-3


def test_bf16_features_of_the_trained_tower_agree_with_fp32(enc):
    """`--dtype auto` computes CLIP in bf16 on CPUs with bf16 units: on the trained tiny tower the features
    keep a cosine >= 0.999 to fp32's and zero-shot picks the same caption for (nearly) every drawing."""
    from clipprefix import synthetic

    bf16 = ClipEncoder.load("tiny", dtype="bf16")
    assert bf16.dtype == torch.bfloat16 and next(bf16.model.parameters()).dtype == torch.bfloat16
    rng = np.random.default_rng(7)
    images = [synthetic.draw_still(s, rng) for s in synthetic.STILLS]
    a, b = enc.encode_images(images), bf16.encode_images(images)
    assert b.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(a, b)
    assert cos.min() > 0.999, cos.min()
    assert not torch.equal(a, b)                      # really computed in bf16
    txt = enc.encode_text([s.caption() for s in synthetic.STILLS])
    pick = lambda f: (torch.nn.functional.normalize(f, dim=-1) @ txt.T).argmax(-1)   # noqa: E731
    assert pick(a).eq(pick(b)).float().mean() >= 0.97


def test_auto_dtype(monkeypatch):
    from clipprefix.core import encoder as encoders

    assert encoders.resolve_dtype("auto", "cuda") == torch.float16
    assert encoders.resolve_dtype("auto", "mps") == torch.float32
    assert encoders.resolve_dtype(None) == torch.float32 and encoders.resolve_dtype("bf16") == torch.bfloat16
    for native, want in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(encoders, "native_bf16", lambda native=native: native)
        assert encoders.resolve_dtype("auto", "cpu") == want
    with pytest.raises(ClipPrefixError, match="auto, fp32, bf16 or fp16"):
        encoders.resolve_dtype("int8")
