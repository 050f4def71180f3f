"""int8 inference: a backbone's ONNX graph statically quantised by ONNX Runtime, calibrated on
the images shipped in ``calibration/`` (scripts/make_int8_calibration.py: the bundled CC0
sample). A fixed calibration makes int8 features a function of the image alone, as fp32
ones are: the graph is built once per model cache and shared by every workspace, and a
classifier trained on one workspace's features serves another's. Calibrating on each
collection instead (what imgatlas did before) changed the cosine to fp32 by < 0.001 on the
dev sets (benchmarks/bench_int8_default.py --own); such older graphs still reopen from their
workspace (``imgatlas.embed.reopen_int8``).

Recipe (QDQ, per-channel int8 weights, uint8 activations, min/max calibration) with the
convolutions that work at high resolution kept in float: every one whose output is at least
a quarter of the input's side (EfficientNet-Lite0: the stem and the first two stages, the
112 and 56 px layers). Everything in int8 runs 2.1x faster than fp32 but gave features at
cosine 0.983 on upscaled 32 px images (CIFAR-10; 0.99 on photos) and cost 0.02 of k-means
ACC there; with those layers in float, cosine 0.995 and 1.3-1.4x the speed. Calibration
(min/max, percentile, entropy, 128 or 512 images) changed the cosine by < 0.001: where the
error starts mattered, not how ranges are found. Keeping only some early layers in float
(only the stem, or no depthwise convolution) made it much worse (0.96, 0.78).
benchmarks/bench_int8.py measures the recipes side by side.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._hashing import sha256_file
from imgatlas._package_data import incomplete_install, package_file, package_path
from imgatlas.backbones._base import Backbone
from imgatlas.errors import ConfigError

RECIPE = "qdq-minmax-float-quarter-v1"
FLOAT_ABOVE = 0.25  # convolutions with an output side >= this share of the input stay float
PRECISIONS = defaults.PRECISIONS
CALIBRATION_IMAGES = 128
CALIBRATION = "backbones/calibration"  # inside the package, with its SHA256SUMS manifest
WITHOUT_INT8 = "or use --precision fp32 meanwhile"


def quantize_onnx(src: Path, out: Path, calibration: np.ndarray, *, method: str = "minmax",
                  keep_float: Sequence[str] | None = None,
                  float_above: float = FLOAT_ABOVE,
                  to_input: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Write ``src`` quantised to ``out`` (atomically), calibrated on ``calibration``
    (``(n, H, W, 3)`` uint8 pixels; ``to_input`` makes the graph's input of them when it is
    not the pixels, see :func:`~imgatlas.backbones.graph_input`). ``keep_float`` names the
    nodes left in float; by default the convolutions whose output side is at least
    ``float_above`` of the input's (see :func:`high_resolution_convs`)."""
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
    convert = to_input or (lambda b: b)
    if keep_float is None:
        keep_float = high_resolution_convs(model, calibration.shape[1], float_above,
                                           input_shape=convert(calibration[:1]).shape)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            # one image per run: the histogram calibrators stack every run's outputs, so
            # batches must all have one shape
            self.batches = iter([{input_name: convert(calibration[i:i + 1])}
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


def high_resolution_convs(model: Any, side: int, share: float,
                          input_shape: Sequence[int] | None = None) -> list[str]:
    """Names of the Conv nodes whose output's side is at least ``share`` x ``side`` (from ONNX
    shape inference on an input of ``input_shape``, by default ``(1, side, side, 3)``)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, input_shape or (1, side, side, 3), strict=False):
        if not d.dim_value:
            d.dim_value = v
    inferred = onnx.shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    out = []
    for node in m.graph.node:
        if node.op_type == "Conv":
            shape = shapes.get(node.output[0], [])
            if len(shape) == 4 and min(shape[2:]) >= share * side:
                out.append(node.name)
    return out


# weights-only int8 (dynamic quantisation, the Hugging Face exports): no calibration data,
# so its features too are a function of the image alone
DYNAMIC_INT8 = "dynamic-qint8"


def portable_calibration(calibration: str | None) -> bool:
    """Whether int8 features made with ``calibration`` are the same for an image in every
    workspace (the shipped set, or none at all), so a model trained on them serves any."""
    return calibration == DYNAMIC_INT8 or calibration == bundled_calibration()


def calibration_fingerprint(shas: Iterable[str]) -> str:
    """Names one calibration set under one recipe."""
    text = RECIPE + "\n" + "\n".join(sorted(shas))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def int8_model_name(base: Backbone, calibration: str) -> str:
    """File name of ``base`` quantised on one calibration set (kept in the workspace)."""
    return f"{base.name}-{base.identity()[:16]}-int8-{calibration}.onnx"


def int8_backbone(base: Backbone, model_path: Path, calibration: str,
                  build: Callable[[Path], None] | None = None) -> Backbone:
    """``base`` running the quantised graph at ``model_path`` (made by ``build`` when
    missing, or built already)."""
    bb = Backbone(base.cfg, model_path, build,
                  identity=f"{base.identity()}-int8-{calibration}", head=base.class_head)
    bb.precision = "int8"
    bb.calibration = calibration
    bb.fp32 = base
    bb.text_tower = base.text_tower  # type: ignore[method-assign]  # words: the same space
    return bb


@functools.cache
def bundled_calibration() -> str:
    """Fingerprint of the shipped calibration set (under this recipe): package data, so
    hashed once per process, not at every backbone a query reopens."""
    listed = _calibration_manifest()
    shas = {name: sha256_file(package_path(f"{CALIBRATION}/{name}")) for name in listed}
    damaged = [f"{CALIBRATION}/{n}" for n, sha in shas.items() if sha != listed[n]]
    if damaged:
        raise incomplete_install(damaged, problem="damaged", meanwhile=WITHOUT_INT8)
    return calibration_fingerprint(shas.values())


def bundled_int8(base: Backbone, cache_dir: Path | None = None) -> Backbone:
    """``base`` quantised on the shipped calibration set; the graph is kept in the model
    cache (``cache_dir``, default ``$IMGATLAS_CACHE`` or ``~/.cache/imgatlas``; never beside
    a user's own model file) and made on first use (deterministic: a cleared cache makes the
    same graph again)."""
    from imgatlas._paths import cache_dir_or_default

    if base.precision != "fp32":
        raise ConfigError(f"{base.name} is already {base.precision}.")
    fp = bundled_calibration()
    path = cache_dir_or_default(cache_dir) / "backbones" / int8_model_name(base, fp)

    def build(out: Path) -> None:
        from imgatlas.backbones._base import graph_input

        quantize_onnx(base.onnx_path(), out, calibration_pixels(base),
                      to_input=lambda b: graph_input(base.cfg, b))

    return int8_backbone(base, path, fp, build)


def calibration_pixels(base: Backbone) -> np.ndarray:
    """The shipped calibration images at ``base``'s input size, ``(n, H, W, 3)`` uint8."""
    from imgatlas.decode import decode_rgb

    cfg = base.cfg
    return np.stack([decode_rgb(f, cfg.input_size, resize=cfg.resize,
                                interpolation=cfg.interpolation)
                     for f in _calibration_files()])


@functools.cache
def _calibration_manifest() -> dict[str, str]:
    """``{file name: sha256}`` of the shipped calibration set, every file checked present:
    a partial set would quietly give other int8 features, so it is refused, named."""
    manifest = package_file(f"{CALIBRATION}/SHA256SUMS", meanwhile=WITHOUT_INT8)
    listed: dict[str, str] = {}
    for line in manifest.read_text("ascii").splitlines():
        if line.strip():  # sha256sum's format: "<sha256>  <name>"
            sha, name = line.split(maxsplit=1)
            listed[name.strip()] = sha
    missing = [f"{CALIBRATION}/{n}" for n in sorted(listed)
               if not package_path(f"{CALIBRATION}/{n}").is_file()]
    if missing or not listed:
        raise incomplete_install(missing or [f"{CALIBRATION}/*.jpg"], meanwhile=WITHOUT_INT8)
    return listed


def _calibration_files() -> list[Path]:
    return [package_path(f"{CALIBRATION}/{name}") for name in sorted(_calibration_manifest())]
