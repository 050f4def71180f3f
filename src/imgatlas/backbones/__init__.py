"""Backbones: a registry of feature extractors, all run through ONNX Runtime."""

from imgatlas._lazy import lazy_exports
from imgatlas.backbones import efficientnet_lite, hf, raw_pixels, tiny  # noqa: F401  (registers)
from imgatlas.backbones._base import Backbone, graph_input, run_features
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._registry import (
    create_backbone,
    describe_backbones,
    list_backbones,
    register_backbone,
)

# Heavier or training-only pieces load on first use (onnx, the graph builder, PyTorch export).
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["BN_EPS", "VARIANTS", "LiteVariant", "block_plan", "build_graph",
                     "same_pads"], "._efficientnet_graph"),
    **dict.fromkeys(["export_onnx", "pixel_input_wrapper", "save_graph"], "._export"),
    **dict.fromkeys(["derived_path", "reopen_derived"], "._derived"),
    **dict.fromkeys(["UnreadableCheckpoint", "load_state_dict"], "._torch_file"),
    **dict.fromkeys(["CALIBRATION_IMAGES", "DYNAMIC_INT8", "PRECISIONS", "bundled_calibration",
                     "bundled_int8", "portable_calibration",
                     "calibration_fingerprint", "calibration_pixels", "int8_backbone",
                     "int8_model_name", "quantize_onnx"], "._quantize"),
})

__all__ = [
    "BN_EPS",
    "CALIBRATION_IMAGES",
    "DYNAMIC_INT8",
    "PRECISIONS",
    "VARIANTS",
    "Backbone",
    "BackboneCfg",
    "LiteVariant",
    "UnreadableCheckpoint",
    "block_plan",
    "build_graph",
    "bundled_calibration",
    "bundled_int8",
    "calibration_fingerprint",
    "calibration_pixels",
    "derived_path",
    "create_backbone",
    "describe_backbones",
    "export_onnx",
    "graph_input",
    "int8_backbone",
    "int8_model_name",
    "list_backbones",
    "load_state_dict",
    "pixel_input_wrapper",
    "portable_calibration",
    "quantize_onnx",
    "reopen_derived",
    "register_backbone",
    "run_features",
    "same_pads",
    "save_graph",
]
