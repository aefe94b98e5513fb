"""The caption explorer: its callbacks are driven directly, no browser."""
import html

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from clipprefix import synthetic  # noqa: E402
from clipprefix.apps.options import load_captioner  # noqa: E402
from clipprefix.apps.widgets import CaptionExplorer, caption_explorer  # noqa: E402
from clipprefix.base.notebook import caption_html  # noqa: E402


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
    assert caption_html(first.text) in explorer.result.value and explorer.captions[0][1:] == (first.text, first.score)
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
    assert f"{caption_html(cap.text)} <small>" in explorer.result.value


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
    assert f"{caption_html(c.text)} <small>({c.score:.2f})</small>" in explorer.result.value


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


def test_controls_that_do_not_apply_are_disabled(explorer):
    explorer.item.value = "img_000"
    unused = {"greedy": {"num_beams", "num_return", "temperature", "top_p", "seed"},
              "beam": {"temperature", "top_p", "seed"}, "sample": {"num_beams"}}
    for strategy, off in unused.items():
        explorer.strategy.value = strategy
        for name in ("num_beams", "num_return", "temperature", "top_p", "seed", "max_new_tokens"):
            assert getattr(explorer, name).disabled == (name in off), (strategy, name)
    assert explorer.segments.disabled                      # an image has no segments
    explorer.item.value = "clips/clip_000"
    assert not explorer.segments.disabled


def test_picking_the_item_the_dropdown_showed_after_an_upload_shows_it(explorer, folder):
    explorer.item.value = "img_001"
    before = explorer.result.value
    explorer.on_upload({"new": ({"name": "mine.jpg", "content": memoryview((folder / "img_000.jpg").read_bytes())},)})
    assert explorer.path.name == "mine.jpg" and explorer.item.value is None
    explorer.item.value = "img_001"                        # what a user picking it in the dropdown does
    assert explorer.path == explorer.catalog["img_001"][0] and explorer.result.value == before


@pytest.mark.parametrize("name, content", [("holiday photo.jpg", b"\xff\xd8\xff\xe0 not a JPEG" + bytes(200)),
                                           ("notes.txt", b"hello"), ("clip.mp4", b"not a video")])
def test_a_broken_upload_is_one_sentence_naming_the_users_file(explorer, name, content):
    explorer.on_upload({"new": ({"name": name, "content": memoryview(content)},)})
    msg = html.unescape(explorer.status.value.split(">", 1)[1].rsplit("<", 1)[0])
    assert name in msg and "/tmp" not in msg and "clipprefix-explorer" not in msg, msg
    assert msg.endswith(".") and explorer.result.value == "" and explorer.captions == []


def test_right_to_left_captions_are_isolated(folder):
    """A caption in Hebrew must not pull the score that follows it into its run (<bdi>)."""
    from types import SimpleNamespace

    import torch

    class RightToLeft:
        generation = SimpleNamespace(strategy="beam", num_beams=2, temperature=1.0, top_p=1.0, max_new_tokens=20)

        def encode_images(self, images):
            return torch.zeros(len(list(images)), 4)

        def caption_features(self, feats, **kw):
            return [SimpleNamespace(text="שלום עולם", score=-1.23, alternatives=[{"text": "a ש", "score": -2.0}])]

    ex = caption_explorer(RightToLeft(), items=[folder / "img_000.jpg"])
    assert "<li><bdi" in ex.result.value and ex.result.value.count("</bdi> <small>(") == 2
