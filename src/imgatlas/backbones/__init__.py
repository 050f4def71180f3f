"""Backbones: a registry of feature extractors, all run through ONNX Runtime."""

from imgatlas.backbones import efficientnet_lite, raw_pixels, tiny  # noqa: F401  (registers)
from imgatlas.backbones._base import Backbone, run_features
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._registry import (
    create_backbone,
    describe_backbones,
    list_backbones,
    register_backbone,
)

__all__ = [
    "Backbone",
    "BackboneCfg",
    "create_backbone",
    "describe_backbones",
    "list_backbones",
    "register_backbone",
    "run_features",
]
