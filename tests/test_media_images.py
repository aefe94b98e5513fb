"""Images as a viewer shows them (issue 12 items 4, 6, 11): EXIF orientation everywhere an image is read,
16-bit and float pictures scaled to 8 bits, transparency on white, Pillow's warnings kept off stderr."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import media_images as MI
from media_checks import is_upright, mad

from clipprefix.core.images import open_image, to_pil


@pytest.fixture(scope="module")
def exif(tmp_path_factory):
    d = tmp_path_factory.mktemp("exif")
    return {o: MI.write_exif_jpeg(d, o) for o in range(1, 9)}


@pytest.mark.parametrize("o", range(1, 9))
def test_exif_orientation_is_applied_when_an_image_is_read(exif, o):
    stored = np.asarray(Image.open(exif[o].path))
    assert is_upright(stored) == (o == 1)                      # the file really is stored turned
    assert is_upright(np.asarray(open_image(exif[o].path)))
    with Image.open(exif[o].path) as im:                       # a PIL image opened by the caller, too
        assert is_upright(np.asarray(to_pil(im)))


def test_renders_galleries_and_notebook_thumbnails_are_the_right_way_up(exif, tmp_path, tiny_encoder):
    from clipprefix.apps.display import thumbnail_data_uri
    from clipprefix.apps.render import caption_under
    from clipprefix.evaluation.gallery import thumbnail

    p = exif[6].path
    drawn = np.asarray(caption_under(p, "a picture"))
    assert is_upright(drawn[:256], aspect=1.5)                 # 384 wide: the picture is the top 256 rows
    assert is_upright(thumbnail({"path": str(p), "kind": "image"}, height=64))
    png = base64.b64decode(thumbnail_data_uri(p, 96).split(",", 1)[1])
    assert is_upright(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))


def test_extracted_features_see_the_upright_picture(exif, tmp_path, tiny_encoder):
    from clipprefix.data.cache import FeatureCache
    from clipprefix.data.extract import extract

    root = tmp_path / "photos"
    root.mkdir()
    for o in (1, 6, 8):
        (root / exif[o].path.name).write_bytes(exif[o].path.read_bytes())
    extract("folder", root, tmp_path / "cache", split="all", encoder=tiny_encoder, progress=False)
    cache = FeatureCache.open(tmp_path / "cache")
    feats = {i: cache.features(i).float() for i in cache.ids}
    upright = feats["orient_1"]
    for i in ("orient_6", "orient_8"):
        assert float((feats[i] - upright).abs().max()) < 0.05 * float(upright.abs().max()), i


WRITERS = {"grey16": MI.write_png16_grey, "rgb16": MI.write_png16_rgb, "float": MI.write_tiff_float,
           "rgba": MI.write_rgba_png, "la": MI.write_la_png, "palette_trns": MI.write_palette_transparent_png,
           "cmyk": MI.write_cmyk_jpeg, "mpo": MI.write_mpo, "avif": MI.write_avif, "png_named_jpg": MI.write_png_named_jpg}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_depth_and_transparency_becomes_the_picture_a_viewer_shows(tmp_path, kind):
    m = WRITERS[kind](tmp_path)
    got = np.asarray(open_image(m.path))
    assert got.shape == m.truth["display"].shape and got.dtype == np.uint8
    assert mad(got, m.truth["display"]) < 3, kind


def test_arrays_with_alpha_or_more_than_8_bits():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:2, :, 3] = 255                       # top half opaque black, bottom half transparent
    out = np.asarray(to_pil(rgba))
    assert (out[:2] == 0).all() and (out[2:] == 255).all()
    ramp = np.tile(np.linspace(0, 65535, 6).astype(np.uint16), (4, 1))
    assert np.array_equal(np.asarray(to_pil(ramp))[..., 0], (ramp >> 8).astype(np.uint8))
    f = np.tile(np.linspace(0, 1, 6, dtype=np.float32), (4, 1))
    assert np.abs(np.asarray(to_pil(f))[..., 0].astype(int) - np.round(f * 255)).max() <= 1


def test_pillow_warnings_never_reach_stderr(tmp_path):
    bad = MI.write_corrupt_exif_jpeg(tmp_path)
    pal = MI.write_palette_transparent_png(tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "default"}       # what a user sees (UserWarnings are shown once)
    r = subprocess.run([sys.executable, "-m", "clipprefix", "caption", str(bad.path), str(pal.path), "--model", "tiny",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and len(r.stdout.splitlines()) == 2
