"""A drawing as a query: from a canvas PNG (transparent or not), a scanned sketch, or a line
map of a photo, to one normalised line image that a backbone can compare.

The shared line domain: dark strokes of a fixed width on white, the strokes' bounding box
centred in a square with a margin, at the backbone's input size. Sketches and photos' line
maps both go through :func:`normalise_lines`, so they differ in what was drawn, not in how.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from imgatlas.decode import open_image, to_rgb
from imgatlas.errors import DecodeError

MARGIN = 0.08  # share of the square left blank around the strokes
STROKE = 3.0  # stroke width in pixels at 224 px, scaled with the output size
WORK = 256  # the side strokes are normalised at before the final resize
MIN_INK = 0.002  # a drawing with less ink than this share of its box is blank
MIN_EXTENT = 0.06  # ... or whose strokes span less than this share of the image


class BlankDrawing(DecodeError):
    """A drawing with nothing (or nearly nothing) on it."""


def load_drawing(data: bytes | str, max_pixels: int | None = 40_000_000) -> np.ndarray:
    """A drawing file (bytes or path) -> a grey uint8 array with dark strokes on white.

    Transparent pixels (a canvas export) count as background; a drawing with light strokes
    on a dark ground is inverted.
    """
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with open_image(src, max_pixels) as img:
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = np.asarray(img.convert("RGBA"))
            alpha = rgba[..., 3].astype(np.float32) / 255.0
            lum = cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_RGB2GRAY)
            painted = alpha > 0
            if painted.any() and (~painted).any() and np.median(lum[painted]) > 200:
                # light strokes on a transparent canvas: the ink is where it is painted
                grey = np.where(painted, 0, 255).astype(np.uint8)
            else:  # composite on white
                grey = (alpha * lum + (1 - alpha) * 255).astype(np.uint8)
        else:
            grey = np.asarray(to_rgb(img).convert("L"))
    grey = np.ascontiguousarray(grey)
    # ink is the minority: if most pixels are dark, the drawing is light-on-dark
    if (grey < 128).mean() > 0.5:
        grey = 255 - grey
    return grey


def normalise_lines(grey: np.ndarray, size: int = 224, *, stroke: float = STROKE,
                    margin: float = MARGIN, check: bool = True) -> np.ndarray:
    """Dark-on-white lines -> an RGB ``size`` x ``size`` uint8 image: strokes cropped to
    their bounding box, centred in a square with ``margin``, thinned to one pixel and
    redrawn ``stroke`` pixels wide (at 224 px). ``check`` refuses blank drawings."""
    ink = grey < 128
    if not ink.any():
        raise BlankDrawing("the drawing is blank: there are no strokes on it")
    ys, xs = np.nonzero(ink)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = y1 - y0, x1 - x0
    if check and (max(h, w) < MIN_EXTENT * max(grey.shape)
                  or ink[y0:y1, x0:x1].mean() < MIN_INK and ink.sum() < 50):
        raise BlankDrawing("the drawing has almost nothing on it: draw the object's outline")
    side = int(np.ceil(max(h, w) / (1 - 2 * margin)))
    canvas = np.zeros((side, side), np.uint8)
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas[oy:oy + h, ox:ox + w] = ink[y0:y1, x0:x1].astype(np.uint8) * 255
    work = cv2.resize(canvas, (WORK, WORK), interpolation=cv2.INTER_AREA)
    lines = cv2.ximgproc.thinning((work > 40).astype(np.uint8) * 255)
    width = max(1, int(round(stroke * WORK / 224)))
    if width > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
        lines = cv2.dilate(lines, kernel)
    out = cv2.resize(255 - lines, (size, size), interpolation=cv2.INTER_AREA)
    return np.repeat(out[..., None], 3, axis=2)


def sketch_pixels(data: bytes | str, size: int = 224) -> np.ndarray:
    """A sketch file -> the normalised line image the backbone sees."""
    return normalise_lines(load_drawing(data), size)
