"""PyTorch -> ONNX, the one path every model trained here takes, and the writer of ONNX
graphs built by hand.

PyTorch is imported only inside these functions: inference never needs it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from imgatlas._optional import import_torch


def pixel_input_wrapper(net: Any, forward: Any, mean: tuple, std: tuple) -> Any:
    """Wrap ``forward(net, x_nchw_float)`` so the exported graph takes uint8 NHWC pixels.

    Normalisation and the layout change then run inside ONNX Runtime, which is faster than
    doing them in NumPy and moves a quarter of the bytes.
    """
    torch = import_torch()

    class PixelInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: Any) -> Any:
            x = x.permute(0, 3, 1, 2).float()
            return forward(self.net, (x - self.mean) / self.std)

    return PixelInput().eval()


def export_onnx(module: Any, example: Any, path: Path, output_names: list[str],
                input_name: str = "pixels") -> None:
    """Export ``module`` with a dynamic batch axis; the file appears atomically."""
    torch = import_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's constant-folding chatter
            torch.onnx.export(
                module, (example,), tmp, dynamo=False, opset_version=17,
                input_names=[input_name], output_names=output_names,
                dynamic_axes={input_name: {0: "batch"}, **{o: {0: "batch"} for o in output_names}},
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_graph(graph: Any, out: Path) -> None:
    """Check an ONNX graph written by hand (opset 17) and save it atomically."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    tmp = Path(out).with_suffix(".tmp")
    onnx.save(model, tmp)
    tmp.replace(out)
