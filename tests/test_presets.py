"""Presets are small JSON files beside the code, checked when read."""
import pytest

from clipprefix.base.errors import ClipPrefixError
from clipprefix.core import presets
from clipprefix.core.generation import CLIPCAP, GenerationConfig


def test_every_shipped_config_reads_and_spells_out_its_generation():
    assert set(presets.config_names()) == {"clipcap-mlp", "clipcap-transformer", "msrvtt-video", "tiny", "tiny-video"}
    for name in presets.config_names():
        cfg = presets.new_config(name)
        GenerationConfig.from_dict(cfg["generation"]).validate()
        assert "recipe" not in cfg and "description" not in cfg
    assert GenerationConfig.from_dict(presets.new_config("clipcap-mlp")["generation"]) == CLIPCAP
    assert presets.recipe("tiny") == {"lr": 1e-3, "train_lm": True, "threads": 1}
    assert presets.recipe("some/checkpoint") == {"lr": 2e-5, "train_lm": None, "threads": None}
    assert set(presets.checkpoint_presets()) == {"tiny", "tiny-trained", "tiny-video", "clipcap-coco", "clipcap-conceptual"}


@pytest.mark.parametrize("broken, says", [
    ({"mapper": {"type": "mlp", "num_beam": 5}}, "unknown fields num_beam"),
    ({"mapper": []}, "'mapper' must be a JSON dict"),
    ({"extra": 1}, "unknown entries extra"),
    ({"generation": {"strategy": "magic"}}, "Unknown decoding strategy"),
    ({"generation": "nobody"}, "Unknown generation defaults"),
    ({"recipe": {"lr": 1, "speed": 2}}, "the recipe takes only"),
    ({"kit": "huge"}, "unknown local kit"),
])
def test_a_broken_config_is_one_sentence(broken, says):
    good = {"clip": {}, "mapper": {"type": "mlp"}, "lm": {}, "tokenizer": {}}
    with pytest.raises(ClipPrefixError, match=says):
        presets._check_config("x", {**good, **broken})
    with pytest.raises(ClipPrefixError, match="lacks lm"):
        presets._check_config("x", {"clip": {}, "mapper": {}, "tokenizer": {}})
