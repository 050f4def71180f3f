"""A workspace's int8 backbone: quantised once, on a sample of the workspace's own images,
and kept in ``W/backbones/`` beside the features it makes (a cache cleared elsewhere cannot
orphan them; search, serve and sketch queries reopen the same graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgatlas.backbones import (
    CALIBRATION_IMAGES,
    PRECISIONS,
    Backbone,
    calibration_fingerprint,
    int8_backbone,
    int8_model_name,
    quantize_onnx,
)
from imgatlas.embed._embedder import Embedder
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.store import Status, Workspace

MODEL_DIR = "backbones"


def with_precision(ws: Workspace, base: Backbone, precision: str, *,
                   seed: int = 0) -> Backbone:
    """``base`` at ``precision``: itself for fp32; for int8 the workspace's quantised graph,
    made now from a seeded sample of its images if it has none yet.

    The first calibration sticks: a collection that grows keeps its int8 graph, so features
    embedded before and after stay comparable (a new graph would mean a new store).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}. "
                          f"Got {precision!r} instead.")
    if precision == "fp32":
        return base
    folder = ws.path / MODEL_DIR
    stem = int8_model_name(base, "*")
    existing = sorted(folder.glob(stem))
    if existing:
        path = existing[0]
        return int8_backbone(base, path, path.stem.rsplit("-int8-", 1)[1])
    shas, pixels = _calibration_sample(ws, base, seed)
    fp = calibration_fingerprint(shas)
    path = folder / int8_model_name(base, fp)
    quantize_onnx(base.onnx_path(), path, pixels)
    return int8_backbone(base, path, fp)


def reopen_int8(ws_path: Path, base: Backbone, calibration: str) -> Backbone:
    """The int8 graph a feature store was made with, or a one-line error naming it."""
    path = ws_path / MODEL_DIR / int8_model_name(base, calibration)
    if not path.is_file():
        raise ConfigError(f"The int8 model {path} that made these features is missing; "
                          "embed again with --precision int8.")
    return int8_backbone(base, path, calibration)


def _calibration_sample(ws: Workspace, base: Backbone, seed: int
                        ) -> tuple[list[str], np.ndarray]:
    by_sha: dict[str, bytes] = {}
    for img in ws.images(Status.OK):
        if img.sha256:
            by_sha.setdefault(img.sha256, img.path)
    shas = sorted(by_sha)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(shas), min(CALIBRATION_IMAGES, len(shas)), replace=False))
    decoder = Embedder(base)
    used, pixels = [], []
    for i in pick:
        try:
            pixels.append(decoder.decode(by_sha[shas[i]]))
            used.append(shas[i])
        except DecodeError:  # embed records it; calibration just does without it
            continue
    if not pixels:
        raise ConfigError("int8 calibration found no decodable image in the workspace.")
    return used, np.stack(pixels)
