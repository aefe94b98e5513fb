"""The caption explorer: its callbacks are driven directly, no browser."""
import html

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from clipprefix import synthetic  # noqa: E402
from clipprefix.apps.options import load_captioner  # noqa: E402
from clipprefix.apps.widgets import CaptionExplorer, caption_explorer  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer")
    synthetic.make_user_folder(root / "user", n_images=3, n_videos=1)
    return root / "user"


@pytest.fixture(scope="module")
def explorer(folder):
    return caption_explorer("tiny", items=folder, segments=4)


def test_explorer_is_a_widget_that_shows_the_first_item_at_once(explorer):
    import ipywidgets

    assert isinstance(explorer, ipywidgets.VBox) and isinstance(explorer, CaptionExplorer)
    assert list(explorer.catalog) == ["img_000", "img_001", "img_002", "clips/clip_000"]
    first = load_captioner("tiny").caption_images([explorer.catalog["img_000"][0]])[0]
    assert html.escape(first.text) in explorer.result.value
    assert "references" in explorer.result.value          # the dataset's own captions are shown too


def test_decoding_controls_change_the_captions(explorer):
    explorer.max_new_tokens.value = 6
    explorer.item.value = "img_001"
    explorer.strategy.value = "beam"
    explorer.num_beams.value = 4
    explorer.num_return.value = 3
    assert explorer.settings() == {"strategy": "beam", "max_new_tokens": explorer.max_new_tokens.value,
                                   "num_return_sequences": 3, "num_beams": 4}
    assert explorer.result.value.count("<li>") - explorer.result.value.count("<ul><li>") >= 3
    explorer.num_return.value = 5                          # more alternatives than beams: capped, not an error
    assert explorer.settings()["num_return_sequences"] == 4 and explorer.status.value == ""
    explorer.strategy.value = "sample"
    explorer.seed.value = 3
    a = explorer.refresh()
    assert explorer.refresh() == a                          # seeded sampling is reproducible
    explorer.strategy.value = "greedy"
    explorer.max_new_tokens.value = 1
    cap = load_captioner("tiny").caption_images([explorer.path], max_new_tokens=1)[0]
    assert f"{html.escape(cap.text)} <small>" in explorer.result.value


def test_videos_show_one_frame_per_segment(explorer):
    explorer.item.value = "clips/clip_000"
    assert explorer.result.value.count("<figure") == 4
    explorer.segments.value = 2
    assert explorer.result.value.count("<figure") == 2


def test_uploads_are_captioned_and_bad_uploads_reported(explorer, folder):
    data = (folder / "img_002.jpg").read_bytes()
    explorer.on_upload({"new": ({"name": "mine.jpg", "content": memoryview(data)},)})
    assert explorer.path.name == "mine.jpg" and "mine.jpg" in explorer.result.value
    explorer.on_upload({"new": ({"name": "broken.png", "content": memoryview(b"nope")},)})
    assert "not a readable image" in explorer.status.value and explorer.result.value == ""


def test_a_new_upload_with_an_old_name_is_captioned_anew(explorer, folder):
    import torch

    explorer.strategy.value = "greedy"
    cap = load_captioner("tiny")
    a, b = folder / "img_000.jpg", folder / "img_001.jpg"
    fa, fb = cap.encode_images([a]), cap.encode_images([b])
    assert not torch.allclose(fa, fb)
    shown = []
    for f in (a, b):
        explorer.on_upload({"new": ({"name": "photo.jpg", "content": memoryview(f.read_bytes())},)})
        shown.append(explorer._feats[explorer._file_key()][:, 0])    # the features the captions came from
    assert torch.allclose(shown[0], fa) and torch.allclose(shown[1], fb)
    c = cap.caption_features(fb[:, None], max_new_tokens=explorer.max_new_tokens.value)[0]
    assert f"{html.escape(c.text)} <small>({c.score:.2f})</small>" in explorer.result.value


def test_uploaded_videos_get_one_frame_per_segment(explorer, folder):
    data = (folder / "clips" / "clip_000.mp4").read_bytes()
    explorer.segments.value = 3
    explorer.on_upload({"new": ({"name": "holiday.mp4", "content": memoryview(data)},)})
    assert explorer.path.name == "holiday.mp4" and explorer.result.value.count("<figure") == 3


def test_any_path_and_a_ready_captioner(folder):
    ex = caption_explorer(load_captioner("tiny"), items=[folder / "img_000.jpg"])
    assert list(ex.catalog) == ["img_000.jpg"]
    img = np.asarray(synthetic.draw_still(synthetic.STILLS[3], np.random.default_rng(1)))
    synthetic.write_image(folder.parent / "other.png", img)
    assert "other.png" in ex.select(folder.parent / "other.png")
