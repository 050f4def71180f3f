"""A trained model as a self-describing folder, and prediction from it.

``W/models/NAME/``::

    model.json          kind, classes, backbone + preprocessing, temperature, abstain rule,
                        training parameters, the split's image ids, metrics
    head.npz            (mode head) the head's arrays; features come from the backbone
    model.onnx          (modes finetune, cnn-small) pixels in, ``features`` and ``logits`` out
    evidence.npz        L2-normalised features of the training images (float16), their ids,
                        labels and paths: the nearest ones are shown as evidence, and an image
                        far from all of them is "unknown"
    epochs.csv          one row per training epoch

A copied folder predicts anywhere: everything but the default backbone's weights (a core
dependency) is inside it, and nothing needs PyTorch.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._paths import cache_dir_or_default
from imgatlas._text import printable
from imgatlas.classify._heads import head_logits, softmax
from imgatlas.errors import ConfigError, ImgatlasError, MissingWeights

FORMAT = 1
MODEL_JSON = "model.json"


def write_model_folder(folder: Path, meta: dict[str, Any], *, head: dict[str, np.ndarray]
                       | None = None, onnx: Path | None = None,
                       evidence: dict[str, np.ndarray] | None = None,
                       epochs: list[dict[str, Any]] | None = None,
                       arrays: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write the folder under a temporary name and swap it in with one rename: a reader (or a
    crash) sees the old complete model or the new one."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if head is not None:
            np.savez(tmp / "head.npz", **head)
        if onnx is not None:
            shutil.copyfile(onnx, tmp / "model.onnx")
        if evidence is not None:
            np.savez(tmp / "evidence.npz", **evidence)
        for fname, content in (arrays or {}).items():  # e.g. adapter.npz
            np.savez(tmp / fname, **content)
        if epochs:
            with open(tmp / "epochs.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=list(epochs[0]))
                w.writeheader()
                w.writerows(epochs)
        (tmp / MODEL_JSON).write_text(json.dumps({"format": FORMAT, **meta}, indent=2,
                                                 default=_json_default))
        old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


@dataclass
class Rule:
    """When a prediction says "unknown": its calibrated top probability is under
    ``min_probability``, or its cosine similarity to the nearest training image is under
    ``min_similarity`` (the image is unlike everything the model was taught)."""

    min_probability: float
    min_similarity: float

    def why(self, probability: float, similarity: float) -> str | None:
        if similarity < self.min_similarity:
            return (f"far from every training image (similarity {similarity:.3f} < "
                    f"{self.min_similarity:.3f})")
        if probability < self.min_probability:
            return f"not confident (probability {probability:.3f} < {self.min_probability:.3f})"
        return None


class Model:
    """A model folder opened for prediction."""

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        path = self.folder / MODEL_JSON
        if not path.is_file():
            raise ConfigError(f"{printable(self.folder)} is not an imgatlas model folder "
                              f"(no {MODEL_JSON}).")
        try:
            self.meta = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"Model file {printable(path)} cannot be read: {e}.") from e
        if self.meta.get("format", 0) > FORMAT:
            raise ConfigError(f"Model {printable(self.folder)} was written by a newer "
                              "imgatlas; upgrade imgatlas.")
        self.classes: list[str] = self.meta["classes"]
        self.kind: str = self.meta["kind"]
        self.temperature = float(self.meta.get("temperature", 1.0))
        rule = self.meta.get("abstain", {})
        self.rule = Rule(float(rule.get("min_probability", 0.0)),
                         float(rule.get("min_similarity", -1.0)))
        self._cache_dir = cache_dir_or_default(cache_dir)
        self._embedder: Any = None
        self._head: dict[str, np.ndarray] | None = None
        self._evidence: dict[str, np.ndarray] | None = None

    @property
    def name(self) -> str:
        return self.meta.get("name", self.folder.name)

    # -- features and logits -------------------------------------------------------------
    def embedder(self) -> Any:
        """The Embedder whose features this model reads: the recorded backbone for a head
        (checked to give the same features it was trained on), the folder's own ONNX graph
        otherwise."""
        if self._embedder is None:
            from imgatlas.embed import Embedder

            if self.kind == "head":
                records = self.meta.get("backbones") or [self.meta["backbone"]]
                bbs = [_recorded_backbone(r, self._cache_dir) for r in records]
                if len(bbs) > 1:
                    from imgatlas.embed import MultiEmbedder

                    self._embedder = MultiEmbedder(bbs)
                    return self._embedder
                bb = bbs[0]
            else:
                from imgatlas.backbones.onnx_file import onnx_file

                onnx = self.folder / "model.onnx"
                if not onnx.is_file():
                    raise ConfigError(f"Model {printable(self.folder)} lacks model.onnx.")
                bb = onnx_file(onnx, spec=self.meta["preprocessing"])
            self._embedder = Embedder(bb)
        return self._embedder

    def logits_and_features(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, features)`` for a batch of decoded pixels at the model's input size."""
        emb = self.embedder()
        if self.kind == "head":
            X = emb.features(pixels)
            return self.logits_from_features(X), X
        session = emb.session
        (feats, logits) = session.run(["features", "logits"],
                                      {session.get_inputs()[0].name: pixels})
        return logits, feats

    def logits_from_features(self, X: np.ndarray) -> np.ndarray:
        if self.kind != "head":
            raise ConfigError("Only head models predict from cached features.")
        if self._head is None:
            with np.load(self.folder / "head.npz") as z:
                self._head = {k: z[k] for k in z.files}
        return head_logits(self.meta["head"], self._head, X)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (temperature scaling)."""
        return softmax(np.asarray(logits, np.float64) / self.temperature)

    # -- evidence --------------------------------------------------------------------------
    def evidence(self) -> dict[str, np.ndarray]:
        if self._evidence is None:
            with np.load(self.folder / "evidence.npz", allow_pickle=False) as z:
                self._evidence = {k: z[k] for k in z.files}
        return self._evidence

    def nearest(self, X: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity and row of the ``k`` nearest training images per row of X."""
        from sklearn.preprocessing import normalize

        ev = self.evidence()
        E = ev["features"].astype(np.float32)
        S = normalize(np.asarray(X, np.float32)) @ E.T
        k = min(k, E.shape[0])
        rows = np.argsort(-S, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(S, rows, 1), rows

    def predict_features(self, logits: np.ndarray, X: np.ndarray, names: list[str],
                         k: int = 3, evidence: int = 3) -> list[dict[str, Any]]:
        """The prediction JSON of each row: top-k calibrated classes, the abstain decision
        and its reason, the nearest training images."""
        P = self.probabilities(logits)
        sims, rows = self.nearest(X, evidence)
        ev = self.evidence()
        out = []
        for name, p, s, r in zip(names, P, sims, rows, strict=True):
            order = np.argsort(-p, kind="stable")[:k]
            top = float(p[order[0]])
            why = self.rule.why(top, float(s[0]))
            out.append({
                "path": name,
                "label": "unknown" if why else self.classes[order[0]],
                "probability": top,
                "top_k": [{"label": self.classes[j], "probability": float(p[j])}
                          for j in order],
                "abstained": why is not None, "reason": why,
                "nearest": [{"id": int(ev["ids"][j]), "path": str(ev["paths"][j]),
                             "label": str(ev["labels"][j]), "similarity": float(sim)}
                            for sim, j in zip(s, r, strict=True)],
            })
        return out


def _recorded_backbone(record: dict[str, Any], cache_dir: Path) -> Any:
    """The backbone a head was trained on, refusing one that no longer gives its features."""
    from imgatlas.backbones import create_backbone
    from imgatlas.backbones.hf import reopen_name
    from imgatlas.errors import UnknownBackbone

    try:
        bb = create_backbone(reopen_name(record), cache_dir=cache_dir)
    except UnknownBackbone:
        try:
            bb = create_backbone(record.get("weights") or record["name"], cache_dir=cache_dir)
        except (UnknownBackbone, MissingWeights) as e:
            raise ConfigError(f"The model's backbone {record['name']!r} is not available "
                              f"here ({e}).") from e
    except MissingWeights as e:
        raise ConfigError(f"The model's backbone {record['name']!r} is not available here: "
                          f"{e}") from e
    if record.get("identity") and bb.identity() != record["identity"]:
        raise ConfigError(f"The backbone {record['name']!r} here is not the one the model "
                          "was trained with (different weights); retrain the model.")
    if record.get("precision", "fp32") != "fp32":
        from imgatlas.backbones import bundled_int8, portable_calibration

        if not portable_calibration(record.get("calibration")):
            raise ConfigError(f"The model was trained on {record['precision']} features "
                              "calibrated differently from this imgatlas's; retrain it.")
        bb = bb.quantized() if bb.quantized is not None else bundled_int8(bb, cache_dir)
    return bb


def open_model(folder: str | os.PathLike[str], cache_dir: Path | None = None) -> Model:
    try:
        return Model(Path(folder), cache_dir)
    except (KeyError, TypeError) as e:
        raise ImgatlasError(f"Model folder {printable(folder)} is incomplete ({e}).") from e
