"""Drawing captions on real pictures (issue 12 items 9 and 10): right-to-left text right-aligned, tiny
frames keep most of their picture and whole words, tiny images are not blown up into strips."""
from __future__ import annotations

import numpy as np
import pytest

from clipprefix.apps import render as R

TEXT = "a red circle on the left and two blue squares"


@pytest.mark.parametrize("size", [(64, 48), (96, 54), (160, 120)])
def test_tiny_frames_keep_most_of_the_picture_and_whole_words(size):
    w, h = size
    frame = np.full((h, w, 3), 100, np.uint8)
    out = R.burn_in(frame, TEXT)
    covered = int((np.abs(out.astype(int) - frame).sum(axis=(1, 2)) > 0).sum())
    assert covered <= h // 3 + 1, (covered, h)                       # at most a third of the rows
    assert covered > 0                                               # but the caption is there
    size_px, _, _, lines = R._fit(TEXT, "", w, h)
    words = TEXT.split()
    assert size_px >= R.MIN_FONT_PX and lines
    assert all(word in words for line in lines for word in line.rstrip("…").split()), lines   # no word cut


def test_a_frame_too_narrow_for_any_letter_gets_no_box():
    frame = np.full((64, 2, 3), 100, np.uint8)
    assert np.array_equal(R.burn_in(frame, TEXT), frame)


def _ink_columns(img, top):
    a = np.asarray(img.convert("L"))[top:].astype(int)
    cols = np.flatnonzero((a < 128).any(axis=0))
    return cols.min(), cols.max()


def test_right_to_left_captions_are_right_aligned_under_an_image():
    pic = np.full((64, 96, 3), 200, np.uint8)
    ar = R.caption_under(pic, "قطة حمراء على الأريكة")
    en = R.caption_under(pic, "a red cat on the sofa")
    w, pad = ar.width, max(6, max(14, round(ar.width / 28)) // 2)
    left, right = _ink_columns(ar, 256)
    assert right >= w - pad - 3 and left > w / 3                    # flush right, not flush left
    left, right = _ink_columns(en, 256)
    assert left <= pad + 3 and right < w - w / 4


def test_tiny_images_are_enlarged_a_little_not_into_a_strip():
    thin = np.full((64, 1, 3), 200, np.uint8)
    out = R.caption_under(thin, "a thin line")
    assert out.width == 384 and 512 <= out.height <= 700             # 8x: 8 x 512 pixels, centred, then the text
    assert np.asarray(out)[:512, 188:196].mean() == pytest.approx(200, abs=2)
