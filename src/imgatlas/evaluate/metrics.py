"""Clustering metrics the source studies judged by, on top of scikit-learn's.

Noise points (label ``-1`` from DBSCAN/HDBSCAN) count as their own group in the matching
metrics: they can never be matched to a class, so they count as errors, as they should.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def _encode(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    values, codes = np.unique(np.asarray(labels), return_inverse=True)
    return values, codes


def hungarian_mapping(labels_true: Any, labels_pred: Any) -> dict[Any, Any]:
    """The one-to-one cluster -> class mapping that maximises matched images."""
    classes, t = _encode(labels_true)
    clusters, p = _encode(labels_pred)
    C = contingency_matrix(p, t)  # clusters x classes
    rows, cols = linear_sum_assignment(-C)
    return {clusters[r].item(): classes[c].item() for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Accuracy under the optimal one-to-one matching of clusters to classes (Hungarian)."""
    t = np.asarray(labels_true)
    if t.size == 0:
        raise ValueError("cluster_accuracy needs at least one sample")
    _, tc = _encode(labels_true)
    _, pc = _encode(labels_pred)
    C = contingency_matrix(pc, tc)
    rows, cols = linear_sum_assignment(-C)
    return float(C[rows, cols].sum() / t.size)


def purity(labels_true: Any, labels_pred: Any) -> float:
    """Share of images that belong to their cluster's majority class."""
    _, tc = _encode(labels_true)
    _, pc = _encode(labels_pred)
    C = contingency_matrix(pc, tc)
    return float(C.max(axis=1).sum() / C.sum())


def external_scores(labels_true: Any, labels_pred: Any) -> dict[str, float | int]:
    """ACC (Hungarian), NMI, ARI, purity, and the counts they were computed on."""
    return {
        "acc": cluster_accuracy(labels_true, labels_pred),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
        "purity": purity(labels_true, labels_pred),
        "n_clusters": int(len(set(np.asarray(labels_pred).tolist()) - {-1})),
        "n_classes": int(len(set(np.asarray(labels_true).tolist()))),
        "n_images": int(np.asarray(labels_true).size),
    }


def confusion_after_matching(labels_true: Any, labels_pred: Any
                             ) -> tuple[np.ndarray, list[Any], list[Any]]:
    """Confusion matrix (classes x clusters) with clusters reordered to face their class.

    Returns ``(matrix, class_names, cluster_ids)``; matched clusters come first in class
    order, unmatched (surplus) clusters after them.
    """
    classes, tc = _encode(labels_true)
    clusters, pc = _encode(labels_pred)
    C = contingency_matrix(tc, pc)  # classes x clusters
    rows, cols = linear_sum_assignment(-C)
    order = [c for _, c in sorted(zip(rows, cols, strict=True))]
    order += [c for c in range(len(clusters)) if c not in set(order)]
    return C[:, order], [c.item() for c in classes], [clusters[c].item() for c in order]


def composition(labels_true: Any, labels_pred: Any) -> dict[Any, dict[str, Any]]:
    """Each cluster's size and class shares, largest share first (the apparel study's tables)."""
    t = np.asarray(labels_true)
    p = np.asarray(labels_pred)
    out: dict[Any, dict[str, Any]] = {}
    for c in np.unique(p):
        members = t[p == c]
        names, counts = np.unique(members, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        out[c.item()] = {
            "size": int(members.size),
            "shares": {names[i].item(): round(float(counts[i] / members.size), 4)
                       for i in order},
        }
    return out


def hopkins(X: np.ndarray, sample_size: int | float = 0.1, random_state: int = 0) -> float:
    """Hopkins statistic H in [0, 1]: ~0.5 for uniform data, -> 1 for clustered data.

    Sampling (documented because H depends on it): ``m`` = ``sample_size`` points (a count,
    or a fraction of n, at least 1 and at most n - 1) are drawn without replacement from X,
    and ``m`` points uniformly from X's bounding box; ``u`` = distances from the uniform points
    to their nearest point of X, ``w`` = distances from the sampled points to their nearest
    *other* point of X. ``H = sum(u^d) / (sum(u^d) + sum(w^d))`` with d the dimension
    (Lawson & Jurs 1990). Seeded by ``random_state``.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if n < 3:
        raise ValueError("hopkins needs at least 3 samples")
    m = int(sample_size if sample_size >= 1 else round(sample_size * n))
    m = min(max(m, 1), n - 1)
    rng = _hopkins_rng(random_state)
    idx = rng.choice(n, m, replace=False)
    lo, hi = X.min(0), X.max(0)
    U = rng.uniform(lo, hi, size=(m, d))
    nn = NearestNeighbors(n_neighbors=2).fit(X)
    u = nn.kneighbors(U, n_neighbors=1)[0][:, 0]
    w = nn.kneighbors(X[idx], n_neighbors=2)[0][:, 1]
    # Scale before powering: d can be ~1000, where raw powers under/overflow.
    s = max(u.max(), w.max(), 1e-300)
    ud, wd = (u / s) ** d, (w / s) ** d
    den = ud.sum() + wd.sum()
    if den == 0:  # both underflowed: compare in log space
        lu, lw = np.log(np.maximum(u, 1e-300)), np.log(np.maximum(w, 1e-300))
        top = np.logaddexp.reduce(d * lu)
        return float(np.exp(top - np.logaddexp(top, np.logaddexp.reduce(d * lw))))
    return float(ud.sum() / den)


def _hopkins_rng(random_state: int) -> np.random.Generator:
    # A stream of its own: data drawn from default_rng(seed) must not share our draws.
    return np.random.default_rng(np.random.SeedSequence([random_state, 0x40B]))


def cophenetic_correlation(X: np.ndarray, method: str = "average",
                           metric: str = "euclidean") -> float:
    """How faithfully a hierarchical clustering preserves the pairwise distances."""
    from scipy.cluster.hierarchy import cophenet, linkage
    from scipy.spatial.distance import pdist

    D = pdist(np.asarray(X, dtype=np.float64), metric=metric)
    Z = linkage(D if method not in ("centroid", "median", "ward") else X, method=method,
                metric=metric)
    return float(cophenet(Z, D)[0])


def find_elbow(ks: Any, values: Any) -> Any:
    """The elbow of a convex curve (SSE vs k, or a sorted k-distance curve): the point
    farthest below the chord joining its ends, both axes scaled to [0, 1] ("kneedle")."""
    k = np.asarray(ks, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if k.size < 3:
        return ks[int(np.argmin(v))] if k.size else None
    kn = (k - k.min()) / max(np.ptp(k), 1e-12)
    vn = (v - v.min()) / max(np.ptp(v), 1e-12)
    chord = vn[0] + (vn[-1] - vn[0]) * kn
    return list(ks)[int(np.argmax(chord - vn))]


def l_method(ks: Any, values: Any) -> Any:
    """The knee of an evaluation curve (SSE vs k) by the L-method (Salvador and Chan, 2004):
    the split point at which two straight lines, one through the curve's left part and one
    through its right part, fit it best (root-mean-square error of each line weighted by its
    share of the points). Needs at least 6 points; with fewer, the kneedle elbow."""
    k = np.asarray(ks, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if k.size < 6:
        return find_elbow(ks, values)
    best, where = np.inf, 2
    for c in range(2, k.size - 2):
        err = 0.0
        for part in (slice(0, c + 1), slice(c + 1, None)):
            x, y = k[part], v[part]
            slope, icept = np.polyfit(x, y, 1)
            err += x.size / k.size * float(np.sqrt(np.mean((y - (slope * x + icept)) ** 2)))
        if err < best:
            best, where = err, c
    return list(ks)[where]
