"""Choosing k: a sweep of internal criteria, and one documented rule to pick from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from imgatlas.evaluate.metrics import find_elbow

SWEEP_DIM = 64


def choose_k(Z: np.ndarray, method: str, k_range: tuple[int, int] | None, seed: int
             ) -> dict[str, Any]:
    """The sweep ``--k auto`` runs: over ``k_range`` (default: grows with the collection, see
    :func:`imgatlas.defaults.k_range_for`), with GMM's own fits for ``gmm`` and k-means for
    every other method; ``chosen_k`` and ``reason`` say what it chose and why."""
    from imgatlas import defaults

    lo, hi = k_range or defaults.k_range_for(len(Z))
    return sweep_k(Z, range(lo, min(hi, len(Z) - 1) + 1),
                   method="gmm" if method == "gmm" else "kmeans", random_state=seed)


def sweep_k(X: np.ndarray, ks: Sequence[int], method: str = "kmeans", *,
            random_state: int = 0, silhouette_sample: int = 2000,
            max_dim: int | None = SWEEP_DIM) -> dict[str, Any]:
    """Fit ``method`` for every k in ``ks`` and report SSE, silhouette, Davies-Bouldin,
    Calinski-Harabasz (and BIC for GMM); pick k by the rule below.

    Rule (``chosen_k``): the elbow of the SSE curve (the kneedle rule: the k farthest below
    the chord joining the curve's ends, both axes scaled to [0, 1]). Mean silhouette is not
    the rule because on deep features it tends to peak at k = 2-3 whatever the true number
    of groups (seen on the dev sets: rooms 3 for 6 classes, clothing 2 for 10); it is
    reported with Davies-Bouldin and Calinski-Harabasz so the user can second-guess the
    choice. Silhouette uses a seeded sample of ``silhouette_sample`` points for large n.

    Above ``max_dim`` dimensions the sweep runs on a seeded PCA projection to ``max_dim``:
    the elbow only needs the curve's shape, and the kneedle rule's [0, 1] scaling ignores the
    near-constant SSE of the dropped components. On the dev sets' 1280-d smoothed features,
    PCA-64 chose the same k as the full space on 3 of 4 sets (clothing 10 instead of 9, for
    10 classes) in a fifth to a sixth of the time. The final clustering uses every dimension.
    """
    from imgatlas.cluster._methods import GMMClusterer, KMeansClusterer

    ks = sorted({int(k) for k in ks if 2 <= int(k) < X.shape[0]})
    if not ks:
        from imgatlas.errors import ConfigError

        raise ConfigError(f"No k to try: need 2 <= k < {X.shape[0]} (the number of images).")
    projected = None
    if max_dim is not None and X.shape[1] > max_dim and X.shape[0] > max_dim:
        from sklearn.decomposition import PCA

        X = PCA(max_dim, random_state=random_state).fit_transform(X).astype(np.float32)
        projected = max_dim
    rows = []
    for k in ks:
        if method == "gmm":
            est = GMMClusterer(k, covariance_type="diag", random_state=random_state).fit(X)
        else:
            est = KMeansClusterer(k, n_init=3, random_state=random_state).fit(X)
        labels = est.labels_
        row: dict[str, Any] = {"k": k}
        centers = np.asarray(est.cluster_centers_)
        row["sse"] = float(((X - centers[labels]) ** 2).sum())
        if len(np.unique(labels)) > 1:
            n = min(silhouette_sample, X.shape[0])
            row["silhouette"] = float(silhouette_score(X, labels, sample_size=n,
                                                       random_state=random_state))
            row["davies_bouldin"] = float(davies_bouldin_score(X, labels))
            row["calinski_harabasz"] = float(calinski_harabasz_score(X, labels))
        else:
            row["silhouette"] = row["davies_bouldin"] = row["calinski_harabasz"] = None
        if method == "gmm":
            row["bic"] = est.bic_
        rows.append(row)
    elbow = find_elbow([r["k"] for r in rows], [r["sse"] for r in rows])
    sil = {r["k"]: r["silhouette"] if r["silhouette"] is not None else -1 for r in rows}
    best = max(sil, key=lambda k: sil[k])
    chosen = elbow
    reason = (f"elbow of the SSE curve over k={ks[0]}..{ks[-1]} at k={elbow} (silhouette "
              f"{sil[elbow]:.3f}; the best silhouette, {sil[best]:.3f}, is at k={best})")
    if projected:
        reason += f"; swept on a {projected}-d PCA projection"
    out: dict[str, Any] = {"method": method, "rows": rows, "elbow_k": elbow,
                           "best_silhouette_k": best, "chosen_k": chosen, "reason": reason,
                           "sweep_dim": projected or int(X.shape[1])}
    if method == "gmm":
        out["best_bic_k"] = min(rows, key=lambda r: r["bic"])["k"]
    return out
