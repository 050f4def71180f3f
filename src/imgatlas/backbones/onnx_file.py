"""Any ONNX model the user gives, with a preprocessing spec in a JSON file beside it.

``model.onnx`` + ``model.json``::

    {"input_size": [224, 224], "mean": [123.675, 116.28, 103.53],
     "std": [58.395, 57.12, 57.375], "interpolation": "bilinear", "resize": "squash",
     "input_format": "float_nchw", "feature_output": 0}

``mean``/``std`` are in pixel units (0-255). ``input_format`` defaults to ``float_nchw``;
an output with spatial dimensions is global-average pooled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.errors import ConfigError, MissingWeights

_KEYS = {"input_size", "mean", "std", "interpolation", "resize", "input_format",
         "feature_output", "dim", "name"}


def onnx_file(path: Path, spec: dict[str, Any] | Path | None = None,
              cache_dir: Path | None = None) -> Backbone:
    path = Path(path)
    if not path.is_file():
        raise MissingWeights(f"Model file {path} does not exist.")
    if spec is None or isinstance(spec, Path):
        spec_path = spec or path.with_suffix(".json")
        if not spec_path.is_file():
            raise MissingWeights(
                f"Preprocessing spec {spec_path} for {path.name} does not exist; "
                "write input_size, mean and std there (see docs/backbones.md)."
            )
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"Cannot read preprocessing spec {spec_path}: {e}.") from e
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigError(f"Unknown keys in preprocessing spec: {', '.join(sorted(unknown))}.")
    try:
        w, h = (int(v) for v in spec["input_size"])
        mean = tuple(float(v) for v in spec.get("mean", (0.0, 0.0, 0.0)))
        std = tuple(float(v) for v in spec.get("std", (1.0, 1.0, 1.0)))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"Preprocessing spec for {path.name} needs input_size [w, h], mean and "
                          f"std of three numbers ({e}).") from e
    dim = int(spec.get("dim") or _probe_dim(path, spec, (w, h)))
    cfg = BackboneCfg(
        name=str(spec.get("name") or path.stem), input_size=(w, h), mean=mean, std=std,  # type: ignore[arg-type]
        dim=dim, interpolation=spec.get("interpolation", "bilinear"),
        resize=spec.get("resize", "squash"), input_format=spec.get("input_format", "float_nchw"),
        feature_output=spec.get("feature_output", 0), weights=str(path.resolve()),
    )
    return Backbone(cfg, path)


def _probe_dim(path: Path, spec: dict[str, Any], size: tuple[int, int]) -> int:
    import numpy as np

    from imgatlas.backbones._base import run_features

    probe_cfg = BackboneCfg(
        name="probe", input_size=size, mean=(0.0,) * 3, std=(1.0,) * 3, dim=0,  # type: ignore[arg-type]
        input_format=spec.get("input_format", "float_nchw"),
        feature_output=spec.get("feature_output", 0),
    )
    sess = Backbone(probe_cfg, path).session("cpu", 1)
    x = np.zeros((1, size[1], size[0], 3), np.uint8)
    return int(run_features(sess, probe_cfg, x).shape[1])
