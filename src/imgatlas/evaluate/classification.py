"""Classifier metrics (pure functions, no I/O): accuracy, per-class scores, confusion,
calibration error."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy, over ``n_bins``
    equal-width bins of the top probability (Guo et al., 2017).

    ``probs`` is (n, classes); ``y`` holds class indices.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        raise ValueError("expected_calibration_error needs at least one sample")
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                          probs: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support, the confusion
    matrix (counts, and normalised by true class), and the ECE when ``probs`` is given.
    ``y_true``/``y_pred`` are class indices into ``classes``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                 zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(1, keepdims=True))
    present = np.unique(y_true)
    out: dict[str, Any] = {
        "accuracy": float((y_true == y_pred).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(present)
        else 0.0,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]),
                          "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion": {"classes": list(classes), "counts": cm.tolist(),
                      "normalized": np.round(norm, 4).tolist()},
        "n_images": int(len(y_true)),
    }
    if probs is not None:
        out["ece"] = expected_calibration_error(probs, y_true)
    return out
