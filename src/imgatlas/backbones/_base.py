from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._hashing import sha256_file
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.errors import ConfigError


class Backbone:
    """A feature extractor: a cfg plus an ONNX file that is materialised on first use.

    ``build`` writes the ONNX file at the path it is given (export, download-free copy,
    synthesis); it runs once per cache directory and never at import time.
    """

    #: "int8" for a statically quantised graph (see backbones/_quantize.py)
    precision: str = "fp32"
    #: the int8 graph's calibration set, by fingerprint
    calibration: str | None = None
    #: what ``precision="auto"`` embeds with: "int8" where the shipped calibration was
    #: measured to keep the quality figures (the EfficientNet-Lite family)
    default_precision: str = "fp32"
    #: the fp32 network an int8 one was quantised from
    fp32: Backbone | None = None
    #: a network tuned on a workspace's collection: {"kind", "fingerprint", "base"}
    derived: dict[str, str] | None = None
    #: the backbone's own int8 graph, where it has one that is not the shipped static
    #: recipe (a Hugging Face export's dynamic int8); None: ``bundled_int8`` makes it
    quantized: Callable[[], Backbone] | None = None

    def __init__(self, cfg: BackboneCfg, onnx_path: Path,
                 build: Callable[[Path], None] | None = None, identity: str | None = None,
                 head: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.cfg = cfg
        self._onnx_path = onnx_path
        self._build = build
        self._identity = identity
        self._head = head

    def class_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(W, b)`` of the network's own classifier, ``logits = features @ W.T + b`` on the
        features this backbone stores (ImageNet-1k for the EfficientNet-Lite family), or None
        when it has none. Read from the weights, not the ONNX graph: a workspace's stored
        features give every image's class scores without running the network again."""
        return None if self._head is None else self._head()

    def text_tower(self) -> Any:
        """The encoder of words into this backbone's feature space (CLIP, SigLIP), or None."""
        return None

    def identity(self) -> str:
        """What pins the weights: given by the factory (a hash it already knows), or the
        sha256 of the ONNX file."""
        if self._identity is None:
            self._identity = sha256_file(self.onnx_path())
        return self._identity

    @property
    def name(self) -> str:
        return self.cfg.name

    def onnx_path(self) -> Path:
        if not self._onnx_path.exists():
            if self._build is None:
                from imgatlas.errors import MissingWeights

                raise MissingWeights(f"Model file {self._onnx_path} does not exist.")
            self._onnx_path.parent.mkdir(parents=True, exist_ok=True)
            self._build(self._onnx_path)
        return self._onnx_path

    def session(self, device: str = "cpu", threads: int | None = None,
                spin: bool = False) -> Any:
        import onnxruntime as ort

        providers = _providers(device, ort.get_available_providers())
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # The memory-pattern planner makes the first two batches of every session 1.5-2x
        # slower (it records, then re-plans); without it steady-state speed is the same.
        so.enable_mem_pattern = False
        so.log_severity_level = 3
        if not spin:
            # Idle ORT threads otherwise busy-wait between ops, stealing the cores that the
            # decode threads need: on 2 cores this is worth several percent end to end.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.onnx_path()), so, providers=providers)

    def record(self) -> dict[str, Any]:
        """What a run stores about the backbone so it can be replayed."""
        from dataclasses import asdict

        rec = {"name": self.cfg.name, "fingerprint": self.cfg.fingerprint(), **asdict(self.cfg)}
        if self.precision != "fp32":
            rec.update(precision=self.precision, calibration=self.calibration)
        if self.derived is not None:
            rec["derived"] = dict(self.derived)
        return rec


def _providers(device: str, available: list[str]) -> list[str]:
    if device not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"device must be one of cpu, cuda, auto. Got {device!r} instead.")
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "device 'cuda' was requested but this onnxruntime has no CUDA provider; "
            "install onnxruntime-gpu or use --device cpu."
        )
    if device in ("cuda", "auto") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def run_features(session: Any, cfg: BackboneCfg, batch: np.ndarray) -> np.ndarray:
    """Run one batch of ``(n, H, W, 3)`` uint8 pixels; return ``(n, dim)`` float32 features."""
    inp = session.get_inputs()[0].name
    x = graph_input(cfg, batch)
    out_names = [o.name for o in session.get_outputs()]
    which = cfg.feature_output
    name = out_names[which] if isinstance(which, int) else which
    (y,) = session.run([name], {inp: x})
    if y.ndim == 4:  # spatial map: global average pool, as for the penultimate layer
        y = y.mean(axis=(2, 3))
    return np.asarray(y, dtype=np.float32).reshape(len(batch), -1)


def graph_input(cfg: BackboneCfg, batch: np.ndarray) -> np.ndarray:
    """What the graph takes for ``(n, H, W, 3)`` uint8 pixels: the pixels themselves, or
    normalised float NCHW (``cfg.input_format``)."""
    if cfg.input_format != "float_nchw":
        return batch
    x = batch.astype(np.float32)
    x -= np.asarray(cfg.mean, np.float32)
    x /= np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
