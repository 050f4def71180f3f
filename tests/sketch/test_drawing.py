"""Drawings in, one normalised line image out: canvases with transparency, inverted scans,
blank or tiny drawings refused; photos' line maps normalised alike."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imgatlas.errors import DecodeError
from imgatlas.sketch import LINE_DETECTORS, BlankDrawing, load_drawing, normalise_lines
from imgatlas.sketch._lines import photo_lines


def _canvas_png(fill=None, stroke=(0, 0, 0, 255), size=300) -> bytes:
    img = Image.new("RGBA", (size, size), fill or (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((60, 80, 200, 220), outline=stroke, width=4)
    d.line((200, 150, 280, 60), fill=stroke, width=4)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_transparent_canvas_and_white_strokes_are_read_as_ink():
    dark = load_drawing(_canvas_png())
    light = load_drawing(_canvas_png(stroke=(255, 255, 255, 255)))
    for grey in (dark, light):
        ink = grey < 128
        assert 0.005 < ink.mean() < 0.2  # strokes, not the whole canvas
    assert (dark < 128).sum() == pytest.approx((light < 128).sum(), rel=0.05)


def test_light_on_dark_scans_are_inverted():
    img = Image.new("L", (200, 200), 10)
    ImageDraw.Draw(img).rectangle((40, 40, 160, 160), outline=245, width=3)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    grey = load_drawing(buf.getvalue())
    assert grey[0, 0] > 200 and grey[40, 100] < 60


def test_normalised_lines_are_centred_square_and_of_fixed_width():
    small = np.full((400, 300), 255, np.uint8)
    small[100:110, 50:250] = 0  # a thick bar, off-centre
    out = normalise_lines(small, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    ink = out[..., 0] < 128
    ys, xs = np.nonzero(ink)
    assert abs((xs.min() + xs.max()) / 2 - 112) < 4  # centred
    assert xs.max() - xs.min() > 0.7 * 224  # the bar spans the box, margins aside
    assert ys.max() - ys.min() <= 6  # thinned and redrawn thin, not 10 px * scale


def test_blank_and_tiny_drawings_are_refused():
    with pytest.raises(BlankDrawing, match="blank"):
        normalise_lines(np.full((100, 100), 255, np.uint8))
    dot = np.full((500, 500), 255, np.uint8)
    dot[250:252, 250:252] = 0
    with pytest.raises(BlankDrawing, match="almost nothing"):
        normalise_lines(dot)
    with pytest.raises(DecodeError):
        load_drawing(b"not a png at all")
    assert issubclass(BlankDrawing, DecodeError)


@pytest.mark.parametrize("detector", LINE_DETECTORS.names())
def test_every_detector_draws_a_photo(detector):
    rgb = np.full((240, 320, 3), 230, np.uint8)
    rgb[60:180, 100:220] = (40, 90, 160)  # a block: its outline should be drawn
    out = photo_lines(rgb, detector)
    ink = out[..., 0] < 128
    assert out.shape == (224, 224, 3) and 0.005 < ink.mean() < 0.3
    flat = photo_lines(np.full((100, 100, 3), 128, np.uint8), detector)
    assert (flat == 255).all()  # nothing to draw: an empty sheet, not an error
