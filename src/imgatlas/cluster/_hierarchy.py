"""The tree behind a hierarchical run, rebuilt on a seeded sample for figures and tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.cluster._methods import LINKAGES, scipy_metric

TREE_SAMPLE = 2000  # images behind the dendrogram and the cophenetic table


def tree_sample(Z: np.ndarray, seed: int, size: int = TREE_SAMPLE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = (np.sort(rng.choice(len(Z), size, replace=False)) if len(Z) > size
           else np.arange(len(Z)))
    return Z[idx].astype(np.float64)


def tree_and_cut(Z: np.ndarray, estimator: dict[str, Any], k: int, seed: int
                 ) -> tuple[np.ndarray, float | None]:
    """The run's linkage on a seeded sample, and the height that cuts it into ``k`` clusters
    (or the run's own distance threshold). ``estimator`` is the recorded ``get_params``."""
    from scipy.cluster.hierarchy import linkage

    method = estimator.get("linkage", "ward")
    metric = scipy_metric(estimator.get("metric", "euclidean"))
    L = linkage(tree_sample(Z, seed), method=method, metric=metric)
    cut = estimator.get("distance_threshold")
    if cut is None and 1 < k <= len(L):
        cut = float((L[-k, 2] + L[-k + 1, 2]) / 2)
    return L, cut


def cophenetic_table(Z: np.ndarray, estimator: dict[str, Any], seed: int
                     ) -> list[dict[str, Any]]:
    """Cophenetic correlation of every linkage method on the run's metric (which linkage
    the tree's heights fit best), on the same seeded sample."""
    from imgatlas.evaluate.metrics import cophenetic_correlation

    metric = scipy_metric(estimator.get("metric", "euclidean"))
    S = tree_sample(Z, seed)
    rows = []
    for method in LINKAGES:
        if method in ("centroid", "median", "ward") and metric != "euclidean":
            rows.append({"linkage": method, "value": None, "used": False,
                         "note": "defined for euclidean only"})
            continue
        rows.append({"linkage": method, "value": cophenetic_correlation(S, method, metric),
                     "used": method == estimator.get("linkage"), "note": ""})
    return rows
