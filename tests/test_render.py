"""Captions drawn under images and burned into frames: wrapped to the width, any script, never failing."""
import numpy as np
import pytest
from PIL import Image

from clipprefix.apps import render


@pytest.fixture
def grey():
    return np.full((120, 160, 3), 90, np.uint8)


def test_there_is_always_a_real_font():
    files = render.font_files()
    assert files, "matplotlib's DejaVu Sans at least"
    assert any(f.endswith("DejaVuSans.ttf") for f in files)


def test_caption_under_keeps_the_picture_and_adds_a_text_band(grey):
    out = render.caption_under(grey, "a red circle on the left")
    assert out.width == 384 and out.height > 120 * 384 / 160      # upscaled to min_width, band below
    arr = np.asarray(out)
    top = arr[: 288 - 2]
    assert np.abs(top.astype(int) - 90).max() <= 2                 # the picture is untouched
    band = arr[290:]
    assert (band.min(axis=2) < 100).sum() > 50                     # dark text pixels on the white band


def test_long_captions_wrap_onto_more_lines(grey):
    short = render.caption_under(grey, "a cat")
    long = render.caption_under(grey, "a cat " * 40)
    assert long.width == short.width and long.height > short.height + 40


def test_wrapped_lines_fit_the_width():
    text = "a very long caption that keeps going well beyond the width of a small picture " * 3
    lines = render.wrap_pixels(text, 16, 200)
    assert len(lines) > 3 and all(render.text_width(line, 16) <= 200 for line in lines)
    assert " ".join(lines).split() == text.split()
    cjk = render.wrap_pixels("一只红色的圆形从左边移动到右边" * 3, 16, 120)
    assert len(cjk) > 1 and "".join(cjk) == "一只红色的圆形从左边移动到右边" * 3


@pytest.mark.parametrize("text", ["Кошка сидит на диване", "قطة تجلس على الأريكة",
                                  "Ελληνικά και 日本語のテキスト", "emoji 🐈 and \u0301 combining"])
def test_any_script_renders_without_error(grey, text):
    out = render.caption_under(grey, text)
    assert (np.asarray(out)[290:].min(axis=2) < 100).sum() > 20


def test_characters_use_a_font_that_has_them():
    chain = render._fonts(16)
    runs = render._runs("abc Жж", chain)
    cov = dict((id(f), c) for f, c in chain)
    for font, s in runs:
        assert cov[id(font)] is None or all(ord(ch) in cov[id(font)] for ch in s if not ch.isspace())


def test_burn_in_changes_only_the_bottom(grey):
    frame = np.full((360, 640, 3), 200, np.uint8)
    out = render.burn_in(frame, "a red circle", "12.0 fps")
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out[:200] == 200).all()
    assert (out[-40:] != 200).any()
    assert (frame == 200).all()                                    # the input is not modified
    assert render.burn_in(frame, "a red circle", "12.0 fps").tobytes() == out.tobytes()


def test_save_image_is_atomic(tmp_path):
    img = Image.new("RGB", (10, 10))
    p = render.save_image(img, tmp_path / "x.jpg")
    assert p.is_file() and [q.name for q in tmp_path.iterdir()] == ["x.jpg"]
