"""Mapper shapes and the one property that separates the video mapper: it reads frame order."""
import pytest
import torch

from clipprefix.base.errors import ClipPrefixError
from clipprefix.core.mappers import MapperConfig, build_mapper


@pytest.mark.parametrize("kind", ["mlp", "transformer", "video", "encoder"])
def test_every_mapper_maps_b_t_d_to_b_k_e(kind):
    cfg = MapperConfig(type=kind, clip_dim=24, n_embd=32, prefix_length=5, clip_length=3, num_layers=2, num_heads=4)
    m = build_mapper(cfg).eval()
    assert m(torch.randn(3, 1, 24)).shape == (3, 5, 32)
    assert m(torch.randn(3, 6, 24)).shape == (3, 5, 32)


def test_video_mapper_depends_on_frame_order_and_pooled_mappers_do_not():
    x = torch.randn(2, 6, 24)
    rev = x.flip(1)
    for kind, order_matters in (("video", True), ("mlp", False), ("transformer", False)):
        torch.manual_seed(0)
        m = build_mapper(MapperConfig(type=kind, clip_dim=24, n_embd=32, prefix_length=4, num_layers=2,
                                      num_heads=4, clip_length=2)).eval()
        assert (not torch.allclose(m(x), m(rev), atol=1e-5)) == order_matters, kind


def test_mlp_mapper_has_clipcap_key_names_and_shapes():
    m = build_mapper(MapperConfig(type="mlp", clip_dim=512, n_embd=768, prefix_length=10))
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"model.0.weight": (3840, 512), "model.0.bias": (3840,),
                      "model.2.weight": (7680, 3840), "model.2.bias": (7680,)}


def test_bad_mapper_configs_raise():
    with pytest.raises(ClipPrefixError):
        build_mapper(MapperConfig(type="lstm"))
    with pytest.raises(ClipPrefixError):
        build_mapper(MapperConfig(type="transformer", n_embd=30, num_heads=4))
    m = build_mapper(MapperConfig(type="video", clip_dim=8, n_embd=16, num_heads=2, max_frames=4, num_layers=1))
    with pytest.raises(ClipPrefixError):
        m(torch.randn(1, 5, 8))
