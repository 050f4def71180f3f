"""Few labels -> the whole collection: label spreading over the kNN graph of the cached
features, self-training on top, and the choice of what a person should label next.

Label spreading (Zhou et al. 2004): with W the symmetric kNN affinity graph (cosine, k
neighbours), S = D^-1/2 W D^-1/2, and Y the one-hot seed labels, iterate
F <- alpha S F + (1 - alpha) Y. Sparse, so it runs on large collections (the graph is
faiss's, as everywhere else).

Spreading wins with one or two labels per class, a logistic head on the seeds from five on
(dev clothing and rooms, benchmarks/bench_classify.py). :func:`propagate` takes both: the
average of the two predictions labels the 30 % most confident images, and a head trained on
the seeds plus those pseudo-labels labels everything (self-training). It was at or near the
best of the three at every labels-per-class count measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas.classify._heads import LogisticHead

NEIGHBOURS = 10
ALPHA = 0.9
ITERATIONS = 30


PSEUDO_SHARE = 0.3  # share of the collection self-training takes as pseudo-labels


def spread_proba(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int,
                 *, n_neighbors: int = NEIGHBOURS, alpha: float = ALPHA,
                 iterations: int = ITERATIONS, graph: Any = None) -> np.ndarray:
    """Class scores (rows sum to 1) of every row of ``X`` by label spreading from labelled
    ``seeds`` (row indices) with class indices ``seed_labels``. ``graph``: a precomputed
    normalised S."""
    S = graph if graph is not None else affinity(X, n_neighbors)
    Y = np.zeros((X.shape[0], n_classes), np.float32)
    Y[seeds, seed_labels] = 1.0
    F = Y.copy()
    for _ in range(iterations):
        F = alpha * (S @ F) + (1 - alpha) * Y
    total = F.sum(1, keepdims=True)
    return np.divide(F, total, out=np.full_like(F, 1.0 / n_classes), where=total > 0)


def spread(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int,
           **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, confidence)`` by label spreading alone."""
    P = spread_proba(X, seeds, seed_labels, n_classes, **kw)
    return P.argmax(1), P.max(1)


def _head_proba(X: np.ndarray, rows: np.ndarray, labels: np.ndarray, n_classes: int
                ) -> np.ndarray:
    P = np.zeros((len(X), n_classes))
    if len(np.unique(labels)) < 2:
        P[:, labels[0]] = 1.0
        return P
    h = LogisticHead().fit(X[rows], labels)
    P[:, h.classes_] = h.predict_proba(X)
    return P


def propagate(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int,
              graph: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, confidence)`` by spreading + a head, then self-training (module doc)."""
    P = (spread_proba(X, seeds, seed_labels, n_classes, graph=graph)
         + _head_proba(X, seeds, seed_labels, n_classes)) / 2
    conf, pseudo = P.max(1), P.argmax(1)
    top = np.setdiff1d(np.argsort(-conf, kind="stable")[:int(PSEUDO_SHARE * len(X))], seeds)
    rows = np.concatenate([seeds, top])
    P2 = _head_proba(X, rows, np.concatenate([seed_labels, pseudo[top]]), n_classes)
    return P2.argmax(1), P2.max(1)


def affinity(X: np.ndarray, n_neighbors: int = NEIGHBOURS) -> Any:
    """The symmetric, normalised kNN graph S = D^-1/2 W D^-1/2 (scipy sparse), W holding the
    cosine similarity (clipped at 0) of each image to its ``n_neighbors`` nearest."""
    from scipy import sparse

    from imgatlas.reduce import knn_graph

    Xn = np.ascontiguousarray(normalize(X), dtype=np.float32)
    k = min(n_neighbors, len(Xn) - 1)
    nn = knn_graph(Xn, k)
    rows = np.repeat(np.arange(len(Xn)), k)
    sims = np.maximum((Xn[rows] * Xn[nn.ravel()]).sum(1), 0)
    W = sparse.csr_matrix((sims, (rows, nn.ravel())), shape=(len(Xn), len(Xn)))
    W = W.maximum(W.T)
    d = np.asarray(W.sum(1)).ravel()
    inv = sparse.diags(1.0 / np.sqrt(np.maximum(d, 1e-12)))
    return (inv @ W @ inv).tocsr()


def head_labels(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The other way to spread: a logistic head trained on the seeds alone."""
    P = _head_proba(X, seeds, seed_labels, n_classes)
    return P.argmax(1), P.max(1)


def estimate_accuracy(X: np.ndarray, labelled: np.ndarray, labels: np.ndarray,
                      seed: int = 0, graph: Any = None) -> dict[str, Any] | None:
    """How right spreading these labels would make the collection, estimated on the labels
    themselves: each fold of them held out in turn, spread from the rest, scored on the
    held-out ones. None until two classes have two labels each."""
    from sklearn.model_selection import StratifiedKFold

    classes, counts = np.unique(labels, return_counts=True)
    usable = classes[counts >= 2]
    if len(usable) < 2:
        return None
    keep = np.isin(labels, usable)
    rows, labs = labelled[keep], labels[keep]
    yi = np.searchsorted(usable, labs)
    k = int(min(5, np.bincount(yi).min()))
    S = graph if graph is not None else affinity(X)
    right = []
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, yi):
        pred, _ = propagate(X, rows[tr], yi[tr], len(usable), graph=S)
        right.extend((pred[rows[te]] == yi[te]).tolist())
    acc = float(np.mean(right))
    return {"accuracy": round(acc, 4), "labels": int(len(rows)), "folds": k,
            "standard_error": round(float(np.sqrt(acc * (1 - acc) / len(right))), 4)}


def label_curve(X: np.ndarray, y: np.ndarray, n_classes: int,
                per_class: tuple[int, ...] = (1, 2, 5, 10, 20), repeats: int = 3,
                seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy of :func:`propagate`, and of spreading alone and a head alone on the same
    seeds, as a function of labels per class: seeds drawn from the labelled images, scored
    on the rest of them (held back)."""
    rng = np.random.default_rng(seed)
    S = affinity(X)
    out = []
    counts = np.bincount(y, minlength=n_classes)
    for m in per_class:
        if m >= counts[counts > 0].min():
            continue
        acc: dict[str, list[float]] = {"propagate": [], "spreading": [], "head": []}
        for _ in range(repeats):
            seeds = np.concatenate([rng.choice(np.flatnonzero(y == c), m, replace=False)
                                    for c in range(n_classes) if counts[c]])
            rest = np.setdiff1d(np.arange(len(y)), seeds)
            for key, fn in (("propagate", propagate), ("spreading", spread),
                            ("head", head_labels)):
                kw = {"graph": S} if key != "head" else {}
                lab, _ = fn(X, seeds, y[seeds], n_classes, **kw)
                acc[key].append(float((lab[rest] == y[rest]).mean()))
        row: dict[str, Any] = {"labels_per_class": m, "repeats": repeats}
        for key, v in acc.items():
            row[key], row[f"{key}_sd"] = float(np.mean(v)), float(np.std(v))
        out.append(row)
    return out


TYPICAL_UNTIL = 5  # labels per class below which typical images are asked for, not doubts


def suggest(X: np.ndarray, labelled: np.ndarray, labels: np.ndarray, n: int, seed: int = 0
            ) -> list[dict[str, Any]]:
    """The ``n`` images a person should label next (rows of ``X``), by budget.

    While the labels are few (fewer than :data:`TYPICAL_UNTIL` per class seen so far, or
    fewer than two classes), **typical and diverse** (TypiClust): the collection, in the
    default clustering space, is cut into as many groups as there will then be labels;
    from each group holding no label yet, largest first, comes the image nearest the centre
    of its larger half (the centre of the whole group is often an in-between image; the
    larger half's is the group's majority kind). Later, **uncertain and diverse**: the
    unlabelled images are cut into ``n`` groups and each gives the one whose prediction
    margin (top two probabilities of a logistic head on the labelled images) is smallest.
    On the dev sets this order beat random picks at 1, 2, 5 and 10 labels per class
    (benchmarks/bench_labels.py); asking for doubts from the start lost to random at 5.
    """
    from sklearn.cluster import KMeans

    from imgatlas import defaults
    from imgatlas.reduce import make_reducer

    free = np.setdiff1d(np.arange(len(X)), labelled)
    n = int(min(n, len(free)))
    if n <= 0:
        return []
    classes, counts = (np.unique(labels, return_counts=True) if len(labels)
                       else (np.array([]), np.array([])))
    if len(classes) < 2 or counts.mean() < TYPICAL_UNTIL:
        try:
            Z = make_reducer(defaults.REDUCE, random_state=seed).fit_transform(
                np.asarray(X, np.float32))
        except ValueError:  # too few images for the default reduction
            Z = normalize(X)
        return _typical(Z, labelled, n, seed)
    Xn = normalize(X)
    groups = KMeans(n, n_init=3, random_state=seed).fit(Xn[free])
    h = LogisticHead().fit(X[labelled], labels)
    P = np.sort(h.predict_proba(X[free]), axis=1)
    margin = P[:, -1] - P[:, -2]
    out = []
    for g in np.argsort(-np.bincount(groups.labels_, minlength=n), kind="stable"):
        members = np.flatnonzero(groups.labels_ == g)
        if not len(members):
            continue
        pick = members[np.argmin(margin[members])]
        out.append({"row": int(free[pick]), "group": int(g),
                    "reason": f"the model hesitates here (margin {margin[pick]:.2f})",
                    "margin": float(margin[pick])})
    return out


def _typical(Z: np.ndarray, labelled: np.ndarray, n: int, seed: int
             ) -> list[dict[str, Any]]:
    from sklearn.cluster import KMeans

    k = int(min(len(labelled) + n, len(Z)))
    groups = KMeans(k, n_init=3, random_state=seed).fit(Z).labels_
    covered = set(groups[labelled].tolist()) if len(labelled) else set()
    out = []
    for g in np.argsort(-np.bincount(groups, minlength=k), kind="stable"):
        members = np.flatnonzero(groups == g)
        if int(g) in covered or not len(members):  # (k-means may leave a group empty)
            continue
        if len(members) >= 4:
            halves = KMeans(2, n_init=3, random_state=seed).fit(Z[members])
            big = int(np.argmax(np.bincount(halves.labels_)))
            members = members[halves.labels_ == big]
            centre = halves.cluster_centers_[big]
        else:
            centre = Z[members].mean(axis=0)
        pick = members[np.argmin(((Z[members] - centre) ** 2).sum(1))]
        out.append({"row": int(pick), "group": int(g), "margin": None,
                    "reason": "the most typical image of a group with no label yet"})
        if len(out) == n:
            return out
    # every group holds a label: the least labelled groups (for their size) give more
    taken = set(labelled.tolist()) | {p["row"] for p in out}
    sizes = np.bincount(groups, minlength=k)
    have = np.bincount(groups[labelled], minlength=k) if len(labelled) else np.zeros(k)
    for g in np.argsort(have / np.maximum(sizes, 1), kind="stable"):
        members = np.array([m for m in np.flatnonzero(groups == g) if m not in taken])
        if not len(members):
            continue
        centre = Z[groups == g].mean(axis=0)
        pick = int(members[np.argmin(((Z[members] - centre) ** 2).sum(1))])
        taken.add(pick)
        out.append({"row": pick, "group": int(g), "margin": None,
                    "reason": "a typical image of a group with few labels"})
        if len(out) == n:
            break
    return out
