"""Thumbnails: a file already thumbnail-sized, in a format browsers show, is copied as it is;
anything else (larger, another mode, rotated by EXIF, or not what the catalog says) is made
by decoding and resizing, and the file's content always matches its name's format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imgatlas.report import make_thumbnail, thumb_media_type, thumb_name
from imgatlas.store import ImageRow


def _row(path: Path, **kw) -> ImageRow:
    with Image.open(path) as im:
        fields = {"format": im.format, "mode": im.mode, "width": im.width,
                  "height": im.height}
    fields.update(kw)
    return ImageRow(id=1, path=str(path).encode(), display=path.name, sha256="ab" * 32,
                    label=None, status="ok", reason=None, size=path.stat().st_size, **fields)


def _pixels(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_a_small_png_is_its_own_thumbnail(tmp_path):
    src = tmp_path / "small.png"
    Image.fromarray(_pixels(28, 28)).save(src)
    name = thumb_name(_row(src))
    assert name.endswith("-o.png")
    out = tmp_path / name
    assert make_thumbnail(str(src).encode(), out)
    assert out.read_bytes() == src.read_bytes() and thumb_media_type(out) == "image/png"


def test_larger_or_other_images_are_resized_jpegs(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(_pixels(300, 200)).save(big)
    grey_alpha = tmp_path / "la.png"
    Image.fromarray(_pixels(20, 20)[..., :2].copy(), "LA").save(grey_alpha)
    for src in (big, grey_alpha):
        name = thumb_name(_row(src))
        assert name.endswith(".jpg") and "-o" not in name
        out = tmp_path / name
        assert make_thumbnail(str(src), out)
        with Image.open(out) as im:
            assert im.format == "JPEG" and max(im.size) <= 96


def test_a_rotated_or_changed_file_is_not_copied(tmp_path):
    rotated = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    Image.fromarray(_pixels(40, 20)).save(rotated, exif=exif.tobytes())
    out = tmp_path / thumb_name(_row(rotated))
    assert out.name.endswith("-o.jpg")  # the catalog cannot see the rotation ...
    assert make_thumbnail(str(rotated), out)
    with Image.open(out) as im:  # ... the thumbnail applies it
        assert im.format == "JPEG" and im.size == (20, 40)
    assert out.read_bytes() != rotated.read_bytes()

    changed = tmp_path / "changed.png"
    Image.fromarray(_pixels(28, 28)).save(changed)
    row = _row(changed)
    Image.fromarray(_pixels(28, 28, 1)).convert("P").save(changed)  # now a palette PNG
    out = tmp_path / thumb_name(row)
    assert make_thumbnail(str(changed), out)
    with Image.open(out) as im:  # the name says PNG: a PNG it is, in RGB
        assert im.format == "PNG" and im.mode == "RGB"
