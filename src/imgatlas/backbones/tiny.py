"""``test_tiny``: a 16-d random conv net written directly as ONNX, for tests and demos of the
machinery. It needs no weights file and no PyTorch; its numbers mean nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgatlas._paths import cache_dir_or_default
from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._export import save_graph
from imgatlas.backbones._registry import register_backbone

default_cfgs = {
    "test_tiny": BackboneCfg(
        name="test_tiny", input_size=(32, 32), mean=(127.5,) * 3, std=(64.0,) * 3, dim=16,
        feature_output="features", weights="random, seed 0",
    )
}


def _build(out: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cfg = default_cfgs["test_tiny"]
    inits = [
        numpy_helper.from_array(np.array(cfg.mean, np.float32).reshape(1, 1, 1, 3), "mean"),
        numpy_helper.from_array(np.array(cfg.std, np.float32).reshape(1, 1, 1, 3), "std"),
        numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["xf", "mean"], ["xc"]),
        helper.make_node("Div", ["xc", "std"], ["xn"]),
        helper.make_node("Transpose", ["xn"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes, "test_tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        inits,
    )
    save_graph(graph, out)


@register_backbone
def test_tiny(cache_dir: Path | None = None) -> Backbone:
    cache = cache_dir_or_default(cache_dir)
    return Backbone(default_cfgs["test_tiny"], cache / "backbones" / "test_tiny-v1.onnx", _build)
