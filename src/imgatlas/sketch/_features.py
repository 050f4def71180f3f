"""Features in the line domain: the photos' line maps embedded once per workspace (their own
feature store), and sketches embedded at query time with test-time augmentation."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas.decode import DEFAULT_MAX_PIXELS
from imgatlas.sketch._drawing import load_drawing, normalise_lines
from imgatlas.sketch._lines import LINE_DETECTORS, lines_image, photo_line_grey

# measured on the dev Sketchy set (benchmarks/bench_sketch.py): see docs/design.md
DETECTOR = "canny"  # beat xdog and edge-drawing
BLOCK: int | None = None  # None: the backbone's pooled head features (beat blocks 7-14)
TTA_MARGINS = (0.04, 0.08, 0.16)  # query-time scales: the strokes' box in more or less margin


def fuse(photo_side: np.ndarray, line_side: np.ndarray) -> np.ndarray:
    """The sketch index's vectors: photo-domain and line-domain features side by side, each
    unit length, scaled by 1/sqrt(2); the inner product of two such vectors is the mean of
    the two domains' cosine similarities (one index, any code family)."""
    return (np.hstack([normalize(photo_side), normalize(line_side)]) / np.sqrt(2)).astype(
        np.float32)


def line_backbone_name(base: str, block: int | None) -> str:
    return base if block is None else f"{base}@block{block}"


def view_name(detector: str) -> str:
    LINE_DETECTORS[detector]  # an unknown detector is a one-line error here
    return f"lines-{detector}"


def photo_decoder(detector: str, size: int, max_pixels: int | None = DEFAULT_MAX_PIXELS
                  ) -> Callable[[Any], np.ndarray]:
    """path -> the photo's normalised line image at the backbone's input size."""
    return partial(_photo_line_pixels, detector=detector, size=size, max_pixels=max_pixels)


def _photo_line_pixels(path: str | bytes | os.PathLike[str], *, detector: str, size: int,
                       max_pixels: int | None) -> np.ndarray:
    return lines_image(photo_line_grey(path, detector, max_pixels), size)


def sketch_views(data: bytes | str | Path, size: int, tta: bool = True) -> np.ndarray:
    """The drawing's normalised line images: one, or with ``tta`` one per margin in
    ``TTA_MARGINS`` and each mirrored (the line-domain retrieval literature's query
    augmentation)."""
    grey = load_drawing(data if isinstance(data, bytes) else os.fspath(data))
    if not tta:
        return normalise_lines(grey, size)[None]
    views = []
    for m in TTA_MARGINS:
        v = normalise_lines(grey, size, margin=m)
        views += [v, np.ascontiguousarray(v[:, ::-1])]
    return np.stack(views)


def sketch_features(embedder: Any, drawings: list[bytes | str | Path], tta: bool = True
                    ) -> np.ndarray:
    """One L2-normalised feature vector per drawing (the mean of its views' features)."""
    size = embedder.backbone.cfg.input_size[0]
    out = []
    for d in drawings:
        F = normalize(embedder.features(sketch_views(d, size, tta)))
        out.append(normalize(F.mean(0, keepdims=True))[0])
    return np.asarray(out, np.float32)
