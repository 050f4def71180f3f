"""Line maps of photos, model-free: what a person would draw of a photo, approximately.

Detectors (registry ``LINE_DETECTORS``), each photo (RGB uint8) -> dark lines on white:

- ``canny``: Canny edges on the grey image, at three scales (Gaussian blur 1, 2, 3 px) and
  thresholds set from the image's own gradient percentiles, united;
- ``xdog``: extended difference of Gaussians (Winnemoeller et al. 2012), a thresholded,
  sharpened band-pass: the look of an ink drawing;
- ``edge-drawing``: OpenCV's EdgeDrawing (Topal & Akinlar 2012), long connected edge
  segments.

Whatever the detector, the map then goes through :func:`normalise_lines` like a sketch:
cropped to its strokes, thinned, redrawn at a fixed width.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from imgatlas.registry import Registry
from imgatlas.sketch._drawing import normalise_lines

LINE_DETECTORS = Registry("line detector")
WORK = 256  # photos are reduced to this side before edges: a sketch's level of detail


def _grey(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = WORK / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


@LINE_DETECTORS.register("canny", help="multi-scale Canny edges (blur 1, 2, 3 px), united")
def canny(rgb: np.ndarray) -> np.ndarray:
    g = _grey(rgb)
    edges = np.zeros_like(g)
    for sigma in (1.0, 2.0, 3.0):
        b = cv2.GaussianBlur(g, (0, 0), sigma)
        mag = np.hypot(cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1))
        hi = float(np.percentile(mag, 90))
        edges |= cv2.Canny(b, 0.4 * hi, hi, L2gradient=True)
    return 255 - edges


@LINE_DETECTORS.register("xdog", help="extended difference of Gaussians, thresholded")
def xdog(rgb: np.ndarray, sigma: float = 1.2, k: float = 1.6, p: float = 20.0,
         eps: float = -0.02, phi: float = 10.0) -> np.ndarray:
    g = _grey(rgb).astype(np.float32) / 255.0
    a = cv2.GaussianBlur(g, (0, 0), sigma)
    b = cv2.GaussianBlur(g, (0, 0), sigma * k)
    d = (1 + p) * a - p * b
    e = np.where(d >= eps, 1.0, 1.0 + np.tanh(phi * (d - eps)))
    return np.where(e < 0.5, 0, 255).astype(np.uint8)


@LINE_DETECTORS.register("edge-drawing", help="OpenCV EdgeDrawing: long connected segments")
def edge_drawing(rgb: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(_grey(rgb), (0, 0), 1.0)
    ed = cv2.ximgproc.createEdgeDrawing()
    params = cv2.ximgproc.EdgeDrawing.Params()
    params.MinPathLength = 20
    params.GradientThresholdValue = 24
    ed.setParams(params)
    ed.detectEdges(g)
    out = np.full_like(g, 255)
    for seg in ed.getSegments():
        pts = np.asarray(seg, np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], False, 0, 1)
    return out


def photo_lines(rgb: np.ndarray, detector: str = "canny", size: int = 224) -> np.ndarray:
    """A photo -> its normalised line image (as a sketch of it would be)."""
    return lines_image(LINE_DETECTORS[detector].factory(rgb), size)


def lines_image(grey: np.ndarray, size: int = 224) -> np.ndarray:
    """A detector's drawing (dark on white) -> the normalised line image; a flat photo,
    with nothing to draw, gives an empty sheet."""
    if not (grey < 128).any():
        return np.full((size, size, 3), 255, np.uint8)
    return normalise_lines(grey, size, check=False)


def photo_line_grey(path: Any, detector: str, max_pixels: int | None) -> np.ndarray:
    """A photo file's line drawing (dark on white), decoded at the detectors' working size."""
    from imgatlas.decode import decode_rgb, open_image

    with open_image(path, max_pixels) as img:
        w, h = img.size
    s = min(1.0, WORK * 1.25 / max(w, h))
    rgb = decode_rgb(path, (max(1, round(w * s)), max(1, round(h * s))),
                     max_pixels=max_pixels)
    return LINE_DETECTORS[detector].factory(rgb)
