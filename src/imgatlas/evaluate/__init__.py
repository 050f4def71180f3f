"""Pure metrics: ``f(labels_true, labels_pred)`` or ``f(X, labels)`` -> float; no I/O."""

from imgatlas.evaluate.metrics import (
    cluster_accuracy,
    composition,
    confusion_after_matching,
    cophenetic_correlation,
    external_scores,
    find_elbow,
    hopkins,
    hungarian_mapping,
    l_method,
    purity,
)

__all__ = [
    "cluster_accuracy",
    "composition",
    "confusion_after_matching",
    "cophenetic_correlation",
    "external_scores",
    "find_elbow",
    "hopkins",
    "hungarian_mapping",
    "l_method",
    "purity",
]
