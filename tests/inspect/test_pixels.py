"""Pixel measures: focus (edge spread), exposure, colour, hash; measured in embed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from conftest import scene
from imgatlas.decode import load_rgb
from imgatlas.inspect import STATS_VERSION, pixel_stats
from imgatlas.inspect._pixels import edge_width, hash_bits, screen_gray


def _width(a: np.ndarray) -> float | None:
    return edge_width(screen_gray(a))


def test_blur_widens_edges_and_motion_blur_is_seen():
    sharp = scene(320, 240, 1)
    w0 = _width(sharp)
    gauss = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(4)))
    assert w0 is not None and w0 < 1.6
    assert _width(gauss) > 2.0 * w0
    import cv2

    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1 / 15  # a horizontal streak: vertical edges smear, horizontal stay
    motion = cv2.filter2D(sharp, -1, kernel)
    assert _width(motion) > 2.0 * w0


def test_plain_sky_and_tiny_images_are_not_judged():
    yy, xx = np.mgrid[0:240, 0:320]
    sky = np.stack([90 + 0.3 * yy, 140 + 0.2 * yy, 230 + 0 * xx], -1).astype(np.uint8)
    assert _width(sky) is None  # a gradient is no edge: a plain sky is not blurry
    assert _width(scene(40, 30, 2)) is None  # too small to judge focus


def test_a_heavily_blurred_photo_is_still_measured():
    blurred = np.asarray(Image.fromarray(scene(400, 300, 3)).filter(ImageFilter.GaussianBlur(9)))
    w = _width(blurred)
    assert w is not None and w > 3.0


def test_exposure_colour_and_hash():
    a = scene(200, 150, 4)
    s = pixel_stats(a)
    dark = pixel_stats((a * 0.08).astype(np.uint8))
    grey = pixel_stats(np.repeat(np.asarray(Image.fromarray(a).convert("L"))[..., None], 3, 2))
    assert dark.p99 < 0.1 < s.p99
    assert grey.chroma < 0.03 < s.chroma
    flat = pixel_stats(np.full((100, 100, 3), 128, np.uint8))
    assert flat.std < 0.01 and flat.edge_width is None
    bright = np.asarray(ImageEnhance.Brightness(Image.fromarray(a)).enhance(1.3))
    half = np.asarray(Image.fromarray(a).resize((100, 75)))
    other = pixel_stats(scene(200, 150, 5))

    def dist(x, y):
        return int(np.unpackbits(hash_bits([x.phash]) ^ hash_bits([y.phash])).sum())

    assert dist(s, pixel_stats(bright)) <= 6 and dist(s, pixel_stats(half)) <= 6
    assert dist(s, other) > 16


def test_stats_row_round_trips_through_the_catalog(tmp_path, cache_dir):
    from imgatlas import api
    from imgatlas.store import Workspace

    d = tmp_path / "img"
    d.mkdir()
    Image.fromarray(scene(200, 150, 6)).save(d / "a.jpg", quality=95)
    api.scan(d, tmp_path / "ws")
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    with Workspace.open(tmp_path / "ws") as ws:
        got = ws.pixel_stats(STATS_VERSION)
    # measured in the embed stage's decode threads, from the same decoded picture
    ref = pixel_stats(load_rgb((d / "a.jpg").read_bytes(), (32, 32)))
    assert got["id"].tolist() == [1]
    assert got["phash"][0] == ref.phash
    assert got["mean"][0] == pytest.approx(ref.mean, abs=1e-6)
