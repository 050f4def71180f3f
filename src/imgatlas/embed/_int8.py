"""Which graph embeds at which precision. int8 graphs are calibrated on the images shipped
with the package (``imgatlas.backbones.bundled_int8``) and shared through the model cache.
Workspaces made before that hold a graph calibrated on their own images in ``W/backbones/``;
it keeps embedding their new images, so features before and after stay comparable."""

from __future__ import annotations

from pathlib import Path

from imgatlas.backbones import (
    PRECISIONS,
    Backbone,
    bundled_calibration,
    bundled_int8,
    int8_backbone,
    int8_model_name,
)
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace

MODEL_DIR = "backbones"


def with_precision(ws: Workspace, base: Backbone, precision: str,
                   cache_dir: Path | None = None) -> Backbone:
    """``base`` at ``precision``: itself for fp32, its int8 graph for int8. ``auto`` keeps
    what the workspace's store of this backbone already holds (a rerun never re-embeds a
    collection at another precision), else takes the backbone's ``default_precision``.
    ``cache_dir``: the model cache that keeps int8 graphs."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}. "
                          f"Got {precision!r} instead.")
    if precision == "auto":
        precision = _precision_in_use(ws, base) or base.default_precision
    if precision == "fp32":
        return base
    if base.quantized is not None:  # its own int8 graph (a Hugging Face export)
        return base.quantized()
    # an older workspace's own calibration sticks for the features it already holds
    stem = int8_model_name(base, "*")
    for path in sorted((ws.path / MODEL_DIR).glob(stem)):
        return int8_backbone(base, path, path.stem.rsplit("-int8-", 1)[1])
    return bundled_int8(base, cache_dir)


def reopen_int8(ws_path: Path, base: Backbone, calibration: str,
                cache_dir: Path | None = None) -> Backbone:
    """The int8 graph a feature store was made with, or a one-line error naming it."""
    if base.quantized is not None:
        return base.quantized()
    if calibration == bundled_calibration():
        return bundled_int8(base, cache_dir)
    path = ws_path / MODEL_DIR / int8_model_name(base, calibration)
    if not path.is_file():
        raise ConfigError(f"The int8 model {path} that made these features is missing; "
                          "embed again with --precision int8.")
    return int8_backbone(base, path, calibration)


def _precision_in_use(ws: Workspace, base: Backbone) -> str | None:
    """The precision of the workspace's default store when ``base`` made it."""
    key = ws.default_store()
    store = ws.feature_store(key) if key else None
    if store is None:
        return None
    rec = store.cfg.get("backbone", {})
    if rec.get("name") != base.name or rec.get("derived") or store.cfg.get("view"):
        return None
    return str(rec.get("precision", "fp32"))
