"""int8 inference: a backbone's ONNX graph statically quantised by ONNX Runtime, calibrated on
pixels of the collection it will embed.

The recipe (QDQ, per-channel int8 weights, uint8 activations) with min/max calibration
gave features at cosine ~0.82 to fp32 on EfficientNet-Lite0: activations with rare large
values get a scale so coarse that the common values lose their detail. Percentile
calibration (99.999th) clips those tails and keeps every layer in int8 at cosine ~0.99
(benchmarks/bench_int8.py measures the recipes side by side). Layers named in
``keep_float`` stay fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from imgatlas.backbones._base import Backbone
from imgatlas.errors import ConfigError

RECIPE = "qdq-percentile-v1"
PRECISIONS = ("fp32", "int8")
CALIBRATION_IMAGES = 128


def quantize_onnx(src: Path, out: Path, calibration: np.ndarray, *, method: str = "percentile",
                  keep_float: Sequence[str] = ()) -> None:
    """Write ``src`` quantised to ``out`` (atomically), calibrated on ``calibration``
    (``(n, H, W, 3)`` uint8 pixels, the graph's input)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ConfigError(f"method must be one of {', '.join(methods)}. Got {method!r}.")
    if not len(calibration):
        raise ConfigError("int8 calibration needs at least one decodable image.")
    model = onnx.load(str(src))
    input_name = model.graph.input[0].name
    # The quantiser addresses nodes by name; the hand-written graphs leave them empty.
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}{i}"

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            # one image per run: the histogram calibrators stack every run's outputs, so
            # batches must all have one shape
            self.batches = iter([{input_name: calibration[i:i + 1]}
                                 for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        part = Path(tmp) / "int8.onnx"
        # the quantiser prints its progress and logs advice on the root logger: neither
        # may reach a --json stdout or the user's terminal
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(named), str(part), Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=methods[method],
                                nodes_to_exclude=list(keep_float))
        finally:
            logging.disable(logging.NOTSET)
        os.replace(part, out)


def calibration_fingerprint(shas: Iterable[str]) -> str:
    """Names one calibration set under one recipe."""
    text = RECIPE + "\n" + "\n".join(sorted(shas))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def int8_model_name(base: Backbone, calibration: str) -> str:
    """File name of ``base`` quantised on one calibration set (kept in the workspace)."""
    return f"{base.name}-{base.identity()[:16]}-int8-{calibration}.onnx"


def int8_backbone(base: Backbone, model_path: Path, calibration: str) -> Backbone:
    """``base`` running the quantised graph at ``model_path`` (built already)."""
    bb = Backbone(replace(base.cfg), model_path,
                  identity=f"{base.identity()}-int8-{calibration}")
    bb.precision = "int8"
    bb.calibration = calibration
    return bb
