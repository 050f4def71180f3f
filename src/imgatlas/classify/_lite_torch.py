"""The last blocks of an EfficientNet-Lite in PyTorch, built from the same weights as the
ONNX graph, for partial fine-tuning; its weights go back into the state dict the graph
builder reads. Batch-norm statistics stay frozen (the layers run in eval mode always): a
few hundred images cannot re-estimate them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imgatlas.backbones import BN_EPS, LiteVariant, block_plan, same_pads


def build_tail(torch: Any, weights: dict[str, np.ndarray], variant: LiteVariant, start: int,
               n_classes: int, classifier: tuple[np.ndarray, np.ndarray], dropout: float = 0.2
               ) -> Any:
    """Blocks ``start``.. of the network, the head conv, pooling, and a linear classifier on
    the L2-normalised pooled features (initialised from ``classifier`` = (W, b), the
    trained logistic head: linear probe, then fine-tune)."""
    nn, F = torch.nn, torch.nn.functional
    plan = block_plan(variant)
    size = math.ceil(variant.resolution / 2)
    for _k, s, _e, _fin, _fout in plan[:start]:
        size = math.ceil(size / s)

    def conv_bn(name: str, bn: str, cin: int, cout: int, k: int, stride: int, size: int,
                groups: int = 1) -> nn.Module:
        conv = nn.Conv2d(cin, cout, k, stride, groups=groups, bias=False)
        conv.weight.data = torch.from_numpy(weights[f"{name}.weight"].astype(np.float32))
        norm = nn.BatchNorm2d(cout, eps=BN_EPS)
        for attr, key in (("weight", "weight"), ("bias", "bias"),
                          ("running_mean", "running_mean"), ("running_var", "running_var")):
            getattr(norm, attr).data = torch.from_numpy(
                weights[f"{bn}.{key}"].astype(np.float32))
        pads = same_pads(size, k, stride)
        return _ConvBN(conv, norm, pads, name, bn)

    class _ConvBN(nn.Module):
        def __init__(self, conv: Any, norm: Any, pads: tuple[int, int], cname: str,
                     bname: str) -> None:
            super().__init__()
            self.conv, self.norm, self.pads = conv, norm, pads
            self.cname, self.bname = cname, bname

        def forward(self, x: Any) -> Any:
            lo, hi = self.pads
            if lo or hi:
                x = F.pad(x, (lo, hi, lo, hi))
            return self.norm(self.conv(x))

    class Block(nn.Module):
        def __init__(self, i: int, k: int, s: int, e: int, fin: int, fout: int, size: int
                     ) -> None:
            super().__init__()
            p = f"_blocks.{i}"
            mid = fin * e
            self.expand = conv_bn(f"{p}._expand_conv", f"{p}._bn0", fin, mid, 1, 1, size) \
                if e != 1 else None
            self.dw = conv_bn(f"{p}._depthwise_conv", f"{p}._bn1", mid, mid, k, s, size,
                              groups=mid)
            self.project = conv_bn(f"{p}._project_conv", f"{p}._bn2", mid, fout, 1, 1,
                                   math.ceil(size / s))
            self.skip = s == 1 and fin == fout

        def forward(self, x: Any) -> Any:
            y = x
            if self.expand is not None:
                y = F.relu6(self.expand(y))
            y = self.project(F.relu6(self.dw(y)))
            return y + x if self.skip else y

    class Tail(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks, s_ = [], size
            for i, (k, s, e, fin, fout) in enumerate(plan[start:], start=start):
                blocks.append(Block(i, k, s, e, fin, fout, s_))
                s_ = math.ceil(s_ / s)
            self.blocks = nn.ModuleList(blocks)
            last = plan[-1][4]
            self.head = conv_bn("_conv_head", "_bn1", last, 1280, 1, 1, 1)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(1280, n_classes)
            self.fc.weight.data = torch.from_numpy(np.asarray(classifier[0], np.float32))
            self.fc.bias.data = torch.from_numpy(np.asarray(classifier[1], np.float32))

        def train(self, mode: bool = True) -> Tail:  # batch norm stays in eval mode
            super().train(mode)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
            return self

        def features(self, x: Any) -> Any:
            for b in self.blocks:
                x = b(x)
            return F.relu6(self.head(x)).mean((2, 3))

        def forward(self, x: Any) -> tuple[Any, Any]:
            f = self.features(x)
            return self.fc(self.dropout(F.normalize(f, dim=1))), f

        def state_arrays(self) -> dict[str, np.ndarray]:
            """The trained weights under the state-dict names the graph builder reads."""
            out = {}
            for m in self.modules():
                if isinstance(m, _ConvBN):
                    out[f"{m.cname}.weight"] = m.conv.weight.detach().numpy().copy()
                    for key in ("weight", "bias", "running_mean", "running_var"):
                        out[f"{m.bname}.{key}"] = getattr(m.norm, key).detach().numpy().copy()
            return out

    return Tail()
