"""Internal validation of a clustering (no labels): silhouettes, Hopkins, noise share."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.evaluate.metrics import hopkins

SILHOUETTE_ALL_BELOW = 20_000  # per-image silhouettes are O(n^2); above, a seeded sample
HOPKINS_DIM = 10  # Hopkins saturates in high dimensions: computed on a PCA projection


def internal_validation(Z: np.ndarray, labels: np.ndarray, seed: int
                        ) -> tuple[dict[str, Any], np.ndarray]:
    """Silhouette (global, per cluster, per image), Hopkins and noise share.

    Noise (-1) is left out of the silhouette, as it belongs to no cluster. Per-image
    silhouettes are exact up to ``SILHOUETTE_ALL_BELOW`` images, sampled (seeded) above.
    """
    from sklearn.metrics import silhouette_samples

    n = len(labels)
    sil = np.full(n, np.nan)
    clustered = np.flatnonzero(labels != -1)
    out: dict[str, Any] = {"noise_share": float(np.mean(labels == -1))}
    if len(np.unique(labels[clustered])) >= 2:
        idx = clustered
        if len(idx) > SILHOUETTE_ALL_BELOW:
            idx = np.sort(np.random.default_rng(seed).choice(idx, SILHOUETTE_ALL_BELOW, False))
        sil[idx] = silhouette_samples(Z[idx], labels[idx])
        out["silhouette"] = float(np.nanmean(sil[idx]))
        out["silhouette_per_cluster"] = {
            int(c): float(np.nanmean(sil[idx][labels[idx] == c])) for c in np.unique(labels[idx])}
        out["silhouette_images"] = int(len(idx))
    else:
        out["silhouette"] = None
    m = min(1000, max(1, n // 10))
    # In hundreds of dimensions the d-th powers in Hopkins' formula saturate (H -> 1 for
    # nearly any data), so it is computed on a 10-d PCA projection of the clustering space.
    H = Z
    if Z.shape[1] > HOPKINS_DIM:
        from sklearn.decomposition import PCA

        H = PCA(HOPKINS_DIM, random_state=seed).fit_transform(Z)
    out["hopkins"] = hopkins(H, m, random_state=seed)
    out["hopkins_sample"] = m
    out["hopkins_space"] = f"pca{HOPKINS_DIM}" if H is not Z else "as clustered"
    return out, sil


def centre_distances(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each image's squared distance to its cluster's mean in the clustering space (NaN for
    noise). Recorded with a run, so a report can order members without rebuilding ``Z``."""
    d = np.full(len(labels), np.nan)
    for c in np.unique(labels):
        if c < 0:
            continue
        rows = np.flatnonzero(labels == c)
        d[rows] = ((Z[rows] - Z[rows].mean(0)) ** 2).sum(1)
    return d
