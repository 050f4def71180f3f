"""Choosing k: a sweep of internal criteria, and one documented rule to pick from it.

The rule (measured with every other candidate on the dev sets and their 46-class union,
benchmarks/bench_k_auto.py): the **L-method** knee of the SSE curve over k = 2..30 gives the
top-level groups; then each group is swept again, and split where its own parts are clearly
separated: their silhouette is at least :data:`SHARPER` times the level above's and, for a
group smaller than :data:`LARGE_GROUP` images, at least :data:`CLEAR`. Groups of one
collection that a single sweep merges (two similar classes, or a whole source set in a
union of sets) come apart; the structure inside a class does not. k is the number of groups
found.

Each sweep is one k-means fit at the top of its range and the merge tree of its centres
(Ward: each merge adds exactly ``n_a n_b / (n_a + n_b) |c_a - c_b|^2`` to the SSE), which
gives every k below it with its SSE and labels: one fit instead of one per k. On the dev
sets (benchmarks/bench_k_auto.py) it found k on every seed of 5 sets of 7 where the fits
per k found 4, at a quarter of the time (9.7-11.3 s of a 10,000-image run before).

Above :data:`SWEEP_SAMPLE` images the sweeps run on a seeded sample of that many (group sizes
scaled back to the whole when the rule compares them): choosing k then costs about what
clustering costs, whatever the collection's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from imgatlas.evaluate.metrics import find_elbow, l_method

SWEEP_DIM = 64
TOP_RANGE = (2, 30)  # the top-level sweep
SHARPER = 1.2  # a group is split when its parts are this many times better separated ...
CLEAR = 0.6  # ... and, below LARGE_GROUP images, separated at least this well (silhouette)
LARGE_GROUP = 1000
MIN_GROUP = 10  # images per part a group may be split into
MAX_DEPTH = 3
SWEEP_SAMPLE = 6000  # images the sweeps run on, a seeded sample above it
SWEEP_RESTARTS = 3  # k-means starts per k while sweeping (1: k auto found on 4 dev sets of 7)


def choose_k(Z: np.ndarray, method: str, k_range: tuple[int, int] | None, seed: int
             ) -> dict[str, Any]:
    """What ``--k auto`` does: the sweep over ``k_range`` (default 2..30; k-means, or GMM's
    own fits for ``gmm``) for the report's curves, and k by the rule of the module
    docstring; ``chosen_k``, ``rule`` and ``reason`` say what it chose and why."""
    lo, hi = k_range or TOP_RANGE
    X, projected = _project(Z, SWEEP_DIM, seed)
    scale = 1.0
    if len(X) > SWEEP_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), SWEEP_SAMPLE, replace=False))
        scale, X = len(X) / SWEEP_SAMPLE, X[rows]
    ks = range(lo, min(hi, len(X) - 1) + 1)
    fits = merge_tree_fits(X, ks, seed)
    out = _table(X, ks, "gmm" if method == "gmm" else "kmeans", seed, fits, projected)
    k, reason, (top_k, top_sil) = count_groups(X, fits, seed, scale=scale)
    if scale > 1:
        reason += f" (swept on a seeded sample of {len(X):,} of the {len(Z):,} images)"
        out["sweep_sample"] = int(len(X))
    out.update(chosen_k=k, rule="recursive L-method", reason=reason
               + f"; the SSE elbow alone would say {out['elbow_k']}, the best silhouette "
                 f"{out['best_silhouette_k']}",
               candidates=candidates(out, k, top_k, top_sil))
    return out


def candidates(sweep: dict[str, Any], chosen: int, top_k: int, top_sil: float
               ) -> list[dict[str, Any]]:
    """The granularities the sweep supports, each once, the chosen first: ``[{"k", "by",
    "evidence", "silhouette"}]``. Two of them near each other in merit (10 breeds or 3
    kinds of dog) are what a person should be offered side by side."""
    sil = {r["k"]: r.get("silhouette") for r in sweep["rows"]}

    def at(k: int) -> str:
        return f"silhouette {sil[k]:.3f}" if sil.get(k) is not None else "beyond the sweep"

    rows = [(chosen, "the rule", "the top-level groups, split again where their parts are "
             f"clearly better separated ({at(chosen)})"),
            (top_k, "the top-level knee", f"the L-method knee of the SSE curve ({at(top_k)}; "
             f"{top_sil:.3f} on the sweep sample)"),
            (sweep["elbow_k"], "the SSE elbow", f"the kneedle elbow of the SSE curve "
             f"({at(sweep['elbow_k'])})"),
            (sweep["best_silhouette_k"], "the best silhouette",
             f"the best separated of the sweep ({at(sweep['best_silhouette_k'])})")]
    out: list[dict[str, Any]] = []
    for k, by, evidence in rows:
        if any(c["k"] == k for c in out):
            next(c for c in out if c["k"] == k)["by"].append(by)
            continue
        out.append({"k": int(k), "by": [by], "evidence": evidence,
                    "silhouette": sil.get(k)})
    return out


def count_groups(X: np.ndarray, fits: list[tuple[int, float, np.ndarray]], seed: int,
                 scale: float = 1.0) -> tuple[int, str, tuple[int, float]]:
    """The number of groups by the recursive rule, why (see the module docstring), and the
    top level's ``(k, silhouette)`` before any group was split again.
    ``X``: the (projected) space; ``fits``: its top-level k-means sweep; ``scale``: images
    each row of ``X`` stands for (a sample of the collection)."""
    top_k, labels, top_sil = _knee(X, fits, seed)
    splits: list[tuple[int, int, int]] = []  # (group size, parts, depth)

    def visit(rows: np.ndarray, parent_sil: float, depth: int) -> int:
        n = len(rows) * scale
        hi = min(TOP_RANGE[1], int(n // MIN_GROUP), len(rows) - 1)
        if hi < 2 or depth > MAX_DEPTH:
            return 1
        k, sub, sil = _knee(X[rows], merge_tree_fits(X[rows], range(2, hi + 1), seed), seed)
        if not (sil >= SHARPER * parent_sil and (n >= LARGE_GROUP or sil >= CLEAR)):
            return 1
        splits.append((int(n), k, depth))
        return sum(visit(rows[sub == c], sil, depth + 1) for c in range(k))

    total = sum(visit(np.flatnonzero(labels == c), top_sil, 1) for c in range(top_k))
    reason = (f"{top_k} groups at the top (the L-method knee of the SSE curve over "
              f"k={fits[0][0]}..{fits[-1][0]}, silhouette {top_sil:.3f})")
    if splits:
        reason += (f"; {len(splits)} group(s) split again where their parts were clearly "
                   f"better separated, giving k={total}")
    else:
        reason += "; no group has parts clearly better separated than the groups themselves"
    return int(total), reason, (int(top_k), float(top_sil))


def _project(X: np.ndarray, max_dim: int | None, seed: int) -> tuple[np.ndarray, int | None]:
    """A seeded PCA projection to ``max_dim`` dimensions (when there are more): the sweep
    only needs the curve's shape."""
    X = np.asarray(X, dtype=np.float32)
    if max_dim is not None and X.shape[1] > max_dim and X.shape[0] > max_dim:
        from sklearn.decomposition import PCA

        return PCA(max_dim, random_state=seed).fit_transform(X).astype(np.float32), max_dim
    return X, None


def merge_tree_fits(X: np.ndarray, ks: Sequence[int], seed: int
                    ) -> list[tuple[int, float, np.ndarray]]:
    """``(k, SSE, labels)`` for each k in ``ks`` below ``len(X)``: k-means (3 restarts) at
    the largest k, then its clusters merged two at a time by Ward's criterion (the pair whose
    merge adds the least SSE), recording every level. Centres are the means of their members,
    so each level's SSE is its labels' exact within-cluster sum of squares."""
    from imgatlas.cluster._methods import KMeansClusterer

    ks = sorted({int(k) for k in ks if 2 <= int(k) < len(X)})
    if not ks:
        return []
    top = ks[-1]
    X64 = np.asarray(X, np.float64)
    leaf = np.asarray(KMeansClusterer(top, n_init=SWEEP_RESTARTS, random_state=seed)
                      .fit(X).labels_)
    size = np.bincount(leaf, minlength=top).astype(np.float64)
    centre = np.zeros((top, X64.shape[1]))
    np.add.at(centre, leaf, X64)
    centre[size > 0] /= size[size > 0, None]
    sse = float(((X64 - centre[leaf]) ** 2).sum())
    owner = np.arange(top)  # leaf -> the cluster it is in now
    alive = list(range(top))
    levels = {top: (sse, owner.copy())}
    while len(alive) > ks[0]:
        c, n = centre[alive], size[alive]
        d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.where((n[:, None] + n[None, :]) > 0,
                            n[:, None] * n[None, :] / (n[:, None] + n[None, :]) * d2, 0.0)
        cost[np.tril_indices(len(alive))] = np.inf
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        a, b = alive[i], alive[j]
        total = size[a] + size[b]
        if total > 0:
            centre[a] = (centre[a] * size[a] + centre[b] * size[b]) / total
        size[a], sse = total, sse + float(cost[i, j])
        owner[owner == b] = a
        alive.remove(b)
        levels[len(alive)] = (sse, owner.copy())
    fits = []
    for k in ks:
        level_sse, own = levels[k]
        _, labels = np.unique(own[leaf], return_inverse=True)
        fits.append((k, level_sse, labels.astype(np.int64)))
    return fits


def _kmeans_fits(X: np.ndarray, ks: Sequence[int], seed: int
                 ) -> list[tuple[int, float, np.ndarray]]:
    """``(k, SSE, labels)`` of k-means (3 restarts) for each k in ``ks`` below ``len(X)``."""
    from imgatlas.cluster._methods import KMeansClusterer

    fits = []
    for k in ks:
        if not 2 <= k < len(X):
            continue
        est = KMeansClusterer(k, n_init=SWEEP_RESTARTS, random_state=seed).fit(X)
        centres = np.asarray(est.cluster_centers_)
        fits.append((k, float(((X - centres[est.labels_]) ** 2).sum()),
                     np.asarray(est.labels_)))
    return fits


def _knee(X: np.ndarray, fits: list[tuple[int, float, np.ndarray]], seed: int
          ) -> tuple[int, np.ndarray, float]:
    """The L-method knee of a sweep's SSE curve: its k, labels and silhouette (on a seeded
    sample of 2,000)."""
    if not fits:
        return 1, np.zeros(len(X), np.int64), 0.0
    k = l_method([f[0] for f in fits], [f[1] for f in fits])
    labels = next(f[2] for f in fits if f[0] == k)
    sil = float(silhouette_score(X, labels, sample_size=min(2000, len(X)),
                                 random_state=seed)) if len(np.unique(labels)) > 1 else 0.0
    return k, labels, sil


def sweep_k(X: np.ndarray, ks: Sequence[int], method: str = "kmeans", *,
            random_state: int = 0, silhouette_sample: int = 2000,
            max_dim: int | None = SWEEP_DIM) -> dict[str, Any]:
    """Fit ``method`` for every k in ``ks`` and report SSE, silhouette, Davies-Bouldin,
    Calinski-Harabasz (and BIC for GMM), with the SSE elbow (``elbow_k``, the kneedle rule:
    the k farthest below the chord joining the curve's ends, both axes scaled to [0, 1])
    and the best silhouette. ``chosen_k`` is the elbow; ``--k auto`` chooses by
    :func:`choose_k`'s rule instead (the elbow found the coarse structure of unions and too
    few groups in sets of many small classes, benchmarks/bench_k_auto.py).

    Above ``max_dim`` dimensions the sweep runs on a seeded PCA projection to ``max_dim``:
    the curves only need their shape. The final clustering uses every dimension.
    """
    ks = sorted({int(k) for k in ks if 2 <= int(k) < X.shape[0]})
    if not ks:
        from imgatlas.errors import ConfigError

        raise ConfigError(f"No k to try: need 2 <= k < {X.shape[0]} (the number of images).")
    P, projected = _project(X, max_dim, random_state)
    fits = _kmeans_fits(P, ks, random_state) if method != "gmm" else None
    return _table(P, ks, method, random_state, fits, projected, silhouette_sample)


def _table(X: np.ndarray, ks: Sequence[int], method: str, random_state: int,
           fits: list[tuple[int, float, np.ndarray]] | None, projected: int | None,
           silhouette_sample: int = 2000) -> dict[str, Any]:
    """The sweep's rows (from ``fits`` for k-means; GMM fits its own), elbow and best
    silhouette."""
    from imgatlas.cluster._methods import GMMClusterer

    ks = sorted({int(k) for k in ks if 2 <= int(k) < X.shape[0]})
    if not ks:
        from imgatlas.errors import ConfigError

        raise ConfigError(f"No k to try: need 2 <= k < {X.shape[0]} (the number of images).")
    rows = []
    by_k = {k: (sse, labels) for k, sse, labels in (fits or [])}
    for k in ks:
        row: dict[str, Any] = {"k": k}
        if method == "gmm":
            est = GMMClusterer(k, covariance_type="diag", random_state=random_state).fit(X)
            labels = est.labels_
            centers = np.asarray(est.cluster_centers_)
            row["sse"] = float(((X - centers[labels]) ** 2).sum())
            row["bic"] = est.bic_
        else:
            row["sse"], labels = by_k[k]
        if len(np.unique(labels)) > 1:
            n = min(silhouette_sample, X.shape[0])
            row["silhouette"] = float(silhouette_score(X, labels, sample_size=n,
                                                       random_state=random_state))
            row["davies_bouldin"] = float(davies_bouldin_score(X, labels))
            row["calinski_harabasz"] = float(calinski_harabasz_score(X, labels))
        else:
            row["silhouette"] = row["davies_bouldin"] = row["calinski_harabasz"] = None
        rows.append(row)
    elbow = find_elbow([r["k"] for r in rows], [r["sse"] for r in rows])
    sil = {r["k"]: r["silhouette"] if r["silhouette"] is not None else -1 for r in rows}
    best = max(sil, key=lambda k: sil[k])
    reason = (f"elbow of the SSE curve over k={ks[0]}..{ks[-1]} at k={elbow} (silhouette "
              f"{sil[elbow]:.3f}; the best silhouette, {sil[best]:.3f}, is at k={best})")
    if projected:
        reason += f"; swept on a {projected}-d PCA projection"
    out: dict[str, Any] = {"method": method, "rows": rows, "elbow_k": elbow,
                           "best_silhouette_k": best, "chosen_k": elbow, "reason": reason,
                           "sweep_dim": projected or int(X.shape[1])}
    if method == "gmm":
        out["best_bic_k"] = min(rows, key=lambda r: r["bic"])["k"]
    return out
