"""Internal validation of a clustering (no labels): silhouettes, Hopkins, noise share."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.evaluate.metrics import hopkins

# Per-image silhouettes cost n^2 distances (1.7 s at 10,000 images on 2 cores, a tenth of
# the clustering step); above this many images, a seeded sample of this many, whose mean
# was within 0.004 of the exact one on dev Fashion-MNIST's 10,000 (5 seeds).
SILHOUETTE_SAMPLE = 5_000
HOPKINS_DIM = 10  # Hopkins saturates in high dimensions: computed on a PCA projection


def internal_validation(Z: np.ndarray, labels: np.ndarray, seed: int,
                        known: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Silhouette (global, per cluster, per image), Hopkins and noise share.

    Noise (-1) is left out of the silhouette, as it belongs to no cluster. Per-image
    silhouettes are exact up to ``SILHOUETTE_SAMPLE`` images, on a seeded sample of that
    many above (``silhouette_images`` says how many; the others' are NaN). ``known``:
    per-image silhouettes already known (NaN where not): only the others are computed, and
    only as many as keep the sample's size (a few images added to an unchanged clustering
    cost a few rows, not n^2).
    """
    from sklearn.metrics import silhouette_samples

    n = len(labels)
    sil = np.full(n, np.nan)
    clustered = np.flatnonzero(labels != -1)
    out: dict[str, Any] = {"noise_share": float(np.mean(labels == -1))}
    if known is not None and len(np.unique(labels[clustered])) >= 2:
        sil = np.asarray(known, dtype=np.float64).copy()
        sil[labels == -1] = np.nan
        todo = clustered[np.isnan(sil[clustered])]
        room = max(0, min(len(clustered), SILHOUETTE_SAMPLE) - (len(clustered) - len(todo)))
        if len(todo) > room:  # the known ones were a sample: keep its size
            todo = np.sort(np.random.default_rng(seed).choice(todo, room, replace=False))
        sil[todo] = silhouettes_of(Z, labels, todo)
        idx = clustered[~np.isnan(sil[clustered])]
        out["silhouette"] = float(np.mean(sil[idx]))
        out["silhouette_per_cluster"] = {
            int(c): float(np.mean(sil[idx][labels[idx] == c])) for c in np.unique(labels[idx])}
        out["silhouette_images"] = int(len(idx))
        out["silhouette_sampled"] = bool(len(idx) < len(clustered))
    elif len(np.unique(labels[clustered])) >= 2:
        idx = clustered
        if len(idx) > SILHOUETTE_SAMPLE:
            idx = np.sort(np.random.default_rng(seed).choice(idx, SILHOUETTE_SAMPLE, False))
        sil[idx] = silhouette_samples(Z[idx], labels[idx])
        out["silhouette"] = float(np.nanmean(sil[idx]))
        out["silhouette_per_cluster"] = {
            int(c): float(np.nanmean(sil[idx][labels[idx] == c])) for c in np.unique(labels[idx])}
        out["silhouette_images"] = int(len(idx))
        out["silhouette_sampled"] = bool(len(idx) < len(clustered))
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


def silhouettes_of(Z: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The silhouettes of ``rows`` against every clustered image (noise left out), as
    ``sklearn.metrics.silhouette_samples`` gives them, at the cost of ``len(rows)`` rows of
    distances."""
    from sklearn.metrics import pairwise_distances

    if not len(rows):
        return np.empty(0)
    clustered = np.flatnonzero(labels != -1)
    groups = np.unique(labels[clustered])
    D = pairwise_distances(Z[rows], Z[clustered])
    sums = np.stack([D[:, labels[clustered] == c].sum(1) for c in groups], axis=1)
    sizes = np.array([(labels[clustered] == c).sum() for c in groups], dtype=np.float64)
    own = np.searchsorted(groups, labels[rows])
    out = np.zeros(len(rows))
    for j in range(len(rows)):
        n_own = sizes[own[j]] - 1  # the row itself is in its cluster, at distance 0
        if n_own <= 0:
            continue  # a cluster of one: silhouette 0, as scikit-learn says
        a = sums[j, own[j]] / n_own
        b = np.min(np.delete(sums[j] / sizes, own[j]))
        out[j] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return out


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
