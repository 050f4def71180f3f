from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import pattern, write_image
from imgatlas.decode import decode_rgb, to_rgb
from imgatlas.errors import DecodeError


def test_modes_become_rgb(tmp_path):
    base = Image.fromarray(pattern(20, 10))
    cases = {
        "1": base.convert("1"),
        "L": base.convert("L"),
        "LA": base.convert("LA"),
        "P": base.convert("P"),
        "RGBA": base.convert("RGBA"),
        "CMYK": base.convert("CMYK"),
        "I;16": Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257),
    }
    for mode, img in cases.items():
        assert img.mode == mode
        out = to_rgb(img)
        assert out.mode == "RGB" and out.size == (20, 10), mode


def test_transparency_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent on the left half
    rgba[:, 2:, 3] = 255
    out = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
    assert (out[:, :2] == 255).all()  # white where transparent
    assert (out[:, 2:] == [255, 0, 0]).all()

    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(1, (2, 0, 4, 4))
    p.info["transparency"] = 0
    out = np.asarray(to_rgb(p))
    assert (out[:, :2] == 255).all() and (out[:, 2:] == [0, 255, 0]).all()


def test_sixteen_bit_is_scaled_not_clipped():
    a = np.full((4, 4), 65535, np.uint16)
    a[0, 0] = 0
    out = np.asarray(to_rgb(Image.fromarray(a)))
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(pattern(30, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif.tobytes())
    out = decode_rgb(p)
    assert out.shape == (30, 10, 3)


def test_resize_modes_and_jpeg_draft_match_full_decode(tmp_path):
    p = write_image(tmp_path / "big.jpg", 1600, 1200, seed=3)
    fast = decode_rgb(p, (224, 224)).astype(int)
    assert fast.shape == (224, 224, 3)
    with Image.open(p) as img:  # reference: full decode, then resize
        ref = np.asarray(img.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR))
    assert np.abs(fast - ref).mean() < 6  # DCT scaling changes pixels slightly, not content
    crop = decode_rgb(p, (100, 100), resize="center_crop")
    assert crop.shape == (100, 100, 3)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    out = decode_rgb(p)
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


@pytest.mark.parametrize("data,reason", [
    (b"", "not an image"),
    (b"hello, this is text", "not an image"),
])
def test_bad_bytes_raise_decode_error(tmp_path, data, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    with pytest.raises(DecodeError, match=reason):
        decode_rgb(p)


def test_pixel_limit(tmp_path):
    p = write_image(tmp_path / "a.png", 100, 100)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_rgb(p, max_pixels=5000)


def test_truncated_jpeg_raises(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(pattern(200, 200)).save(buf, "JPEG")
    p = tmp_path / "t.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        decode_rgb(p)


@pytest.mark.parametrize("w,h,mode,orientation", [
    (300, 200, "RGB", 1), (300, 200, "L", 1), (300, 200, "RGB", 6), (1900, 1500, "RGB", 1),
    (1900, 1500, "RGB", 8),
])
def test_jpeg_fast_path_matches_pillow(tmp_path, monkeypatch, w, h, mode, orientation):
    from imgatlas.decode import _image

    img = Image.fromarray(pattern(w, h, seed=4)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "x.jpg"
    img.save(p, exif=exif.tobytes(), quality=92)
    fast = decode_rgb(p, (224, 160))
    monkeypatch.setattr(_image, "_jpeg_fast_path", lambda *a: None)
    slow = decode_rgb(p, (224, 160))
    assert fast.shape == slow.shape == (160, 224, 3)
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 1.0
