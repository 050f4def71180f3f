from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackboneCfg:
    """Everything that decides a backbone's numbers, in the spirit of timm's ``default_cfg``.

    ``mean``/``std`` are in pixel units (0-255): the network sees ``(x - mean) / std``.
    ``input_format`` says who does that: ``uint8_nhwc`` graphs take raw pixels and normalise
    inside (cheaper: a quarter of the bytes, no Python work), ``float_nchw`` graphs get a
    normalised tensor from :mod:`imgatlas.embed`.
    """

    name: str
    input_size: tuple[int, int]  # (width, height)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    interpolation: str = "bilinear"
    resize: str = "squash"  # squash | center_crop
    input_format: str = "uint8_nhwc"  # uint8_nhwc | float_nchw
    feature_output: str | int = 0  # output name or index holding the features
    weights: str = ""  # where the weights come from, for people and the run record
    extra: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("input_size", "mean", "std", "interpolation", "resize")}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()
                              ).hexdigest()[:12]
