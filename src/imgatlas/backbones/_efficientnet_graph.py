"""EfficientNet-Lite written directly as an ONNX graph from its published weights.

No PyTorch at install or run time: the weights are read with :mod:`._torch_file`, every
batch norm is folded into the convolution before it, and the graph is assembled with
``onnx.helper``. The architecture is that of ``efficientnet-lite-pytorch`` (the reference
the weights were published for): a 3x3 stride-2 stem of 32 channels, seven stages of
mobile inverted bottlenecks (1x1 expansion, kxk depthwise, 1x1 projection, ReLU6, no
squeeze-excitation, identity skip when shape allows), a 1x1 head of 1280 channels, global
average pooling and a 1000-way linear layer. Convolutions pad like TensorFlow's ``SAME``
(asymmetric for stride 2), computed for the fixed input size, exactly as the reference's
static-padding convolutions do. Tested against the PyTorch reference: same features to
float rounding (``tests/backbones``).

Lite0-4 differ in width and depth multipliers and input size; the stem and head are not
scaled, nor are the first and last stages repeated ("fix_head_stem").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (repeats, kernel, stride, expand ratio, input filters, output filters), lite0 base
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    resolution: int


VARIANTS = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260),
    "efficientnet_lite3": LiteVariant(1.2, 1.4, 280),
    "efficientnet_lite4": LiteVariant(1.4, 1.8, 300),
}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    f = filters * width
    new = max(divisor, int(f + divisor / 2) // divisor * divisor)
    if new < 0.9 * f:
        new += divisor
    return int(new)


def block_plan(variant: LiteVariant) -> list[tuple[int, int, int, int, int]]:
    """Every block as (kernel, stride, expand ratio, input filters, output filters)."""
    plan = []
    for i, (r, k, s, e, fin, fout) in enumerate(STAGES):
        fin, fout = _round_filters(fin, variant.width), _round_filters(fout, variant.width)
        if i == 0:
            fin = 32  # the stem is not scaled
        if i not in (0, len(STAGES) - 1):
            r = int(math.ceil(variant.depth * r))
        plan.append((k, s, e, fin, fout))
        plan += [(k, 1, e, fout, fout)] * (r - 1)
    return plan


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, prefix: str, a: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv_bn(self, x: str, conv: str, bn: str, size: int, stride: int, groups: int = 1,
                relu6: bool = True) -> str:
        """Conv (no bias) + batch norm folded into one biased Conv; ReLU6 as Clip."""
        W = self.w[f"{conv}.weight"].astype(np.float64)
        gamma, beta = self.w[f"{bn}.weight"], self.w[f"{bn}.bias"]
        mean, var = self.w[f"{bn}.running_mean"], self.w[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var.astype(np.float64) + BN_EPS)
        Wf = (W * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = W.shape[-1]
        lo, hi = same_pads(size, k, stride)
        y = self.node("Conv", [x, self.const("w", Wf), self.const("b", bf)],
                      kernel_shape=[k, k], strides=[stride, stride], group=groups,
                      pads=[lo, lo, hi, hi])
        if relu6:
            y = self.node("Clip", [y, self.const("lo", np.array(0, np.float32)),
                                   self.const("hi", np.array(6, np.float32))])
        return y


def build_graph(weights: dict[str, np.ndarray], variant: LiteVariant, out: Path,
                mean: float = 127.0, std: float = 128.0, name: str = "efficientnet_lite",
                extra_outputs: tuple[int, ...] = (),
                classifier: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Write the ONNX model: ``pixels`` uint8 (n, H, W, 3) -> ``features`` (n, 1280) and
    ``logits`` (n, 1000); ``extra_outputs`` adds ``block<i>`` feature maps (NCHW).

    ``classifier=(W, b)`` replaces the ImageNet layer: ``logits = normalize(features) W^T +
    b``, a classifier trained on L2-normalised features (a fine-tuned model)."""
    from onnx import TensorProto, helper

    from imgatlas.backbones._export import save_graph

    g = _Graph(weights)
    size = variant.resolution
    x = g.node("Cast", ["pixels"], to=TensorProto.FLOAT)
    x = g.node("Sub", [x, g.const("mean", np.array(mean, np.float32))])
    x = g.node("Mul", [x, g.const("inv_std", np.array(1.0 / std, np.float32))])
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.conv_bn(x, "_conv_stem", "_bn0", size, 2)
    size = math.ceil(size / 2)
    outputs = []
    for i, (_k, s, e, fin, fout) in enumerate(block_plan(variant)):
        p = f"_blocks.{i}"
        inp = x
        if e != 1:
            x = g.conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", size, 1)
        x = g.conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", size, s, groups=fin * e)
        size = math.ceil(size / s)
        x = g.conv_bn(x, f"{p}._project_conv", f"{p}._bn2", size, 1, relu6=False)
        if s == 1 and fin == fout:
            x = g.node("Add", [x, inp])
        if i in extra_outputs:
            outputs.append((f"block{i}", x, fout, size))
    x = g.conv_bn(x, "_conv_head", "_bn1", size, 1)
    pooled = g.node("GlobalAveragePool", [x])
    g.nodes.append(helper.make_node("Flatten", [pooled], ["features"], axis=1))
    if classifier is None:
        fc_in, fc_w, fc_b = "features", weights["_fc.weight"], weights["_fc.bias"]
    else:
        norm = g.node("LpNormalization", ["features"], axis=1, p=2)
        fc_in, (fc_w, fc_b) = norm, classifier
    g.nodes.append(helper.make_node(
        "Gemm", [fc_in, g.const("fc_w", np.asarray(fc_w, np.float32)),
                 g.const("fc_b", np.asarray(fc_b, np.float32))], ["logits"], transB=1))
    for oname, src, _c, _s in outputs:
        g.nodes.append(helper.make_node("Identity", [src], [oname]))
    n_classes = int(np.asarray(fc_w).shape[0])
    res = variant.resolution
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", res, res, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1280]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])]
        + [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", c, s, s])
           for o, _src, c, s in outputs],
        g.inits,
    )
    save_graph(graph, out)
