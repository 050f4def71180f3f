"""``raw_pixels_<size>``: the image itself, resized to size x size and flattened to floats in
[0, 1]: the baseline every deep feature must beat (the studies' raw-pixel k-means)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgatlas._paths import cache_dir_or_default
from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._export import save_graph
from imgatlas.backbones._registry import register_backbone

SIZES = (28, 32, 64)
default_cfgs = {
    f"raw_pixels_{s}": BackboneCfg(
        name=f"raw_pixels_{s}", input_size=(s, s), mean=(0.0,) * 3, std=(255.0,) * 3,
        dim=s * s * 3, interpolation="area", feature_output="features", weights="none",
    )
    for s in SIZES
}


def _builder(size: int):
    def build(out: Path) -> None:
        from onnx import TensorProto, helper, numpy_helper

        nodes = [
            helper.make_node("Cast", ["pixels"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["xf", "scale"], ["xs"]),
            helper.make_node("Flatten", ["xs"], ["features"], axis=1),
        ]
        graph = helper.make_graph(
            nodes, f"raw_pixels_{size}",
            [helper.make_tensor_value_info("pixels", TensorProto.UINT8,
                                           ["batch", size, size, 3])],
            [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                           ["batch", size * size * 3])],
            [numpy_helper.from_array(np.array(255.0, np.float32), "scale")],
        )
        save_graph(graph, out)

    return build


def _register(size: int) -> None:
    def factory(cache_dir: Path | None = None) -> Backbone:
        cache = cache_dir_or_default(cache_dir)
        name = f"raw_pixels_{size}"
        return Backbone(default_cfgs[name], cache / "backbones" / f"{name}-v1.onnx",
                        _builder(size), identity=f"{name}-v1")

    factory.__name__ = f"raw_pixels_{size}"
    register_backbone(factory)


for _s in SIZES:
    _register(_s)
