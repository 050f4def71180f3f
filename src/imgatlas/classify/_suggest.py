"""What a person should label next, by budget (``suggest-labels --n B``).

While the labels are few (fewer than :data:`TYPICAL_UNTIL` a class seen so far, or fewer
than two classes): **typical and diverse** (TypiClust-like). The collection, in the
clustering space, is cut into as many clusters as there will then be labels (the default
clustering's k-means, k = labels so far + B: with no labels yet, B clusters); every
cluster holding no label yet, largest first, gives its typical image, the one nearest the
centre of the cluster's larger half (the centre of the whole cluster is often an
in-between image; its larger half's is the cluster's majority kind). Cluster-then-label
then gives each cluster that image's label.
Later, **uncertain and diverse**: the unlabelled images are cut into B groups and each
gives the one whose prediction margin (top two probabilities of a logistic head on the
labelled images) is smallest. On the dev sets this order beat random picks at 1, 2, 5 and
10 labels per class (benchmarks/bench_labels.py); asking for doubts from the start lost to
random at 5.

Near-duplicate copies and images inspect flagged (``avoid``) are passed over wherever their
cluster holds another image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas.classify._heads import LogisticHead
from imgatlas.classify._propagate import LabelSpace

TYPICAL_UNTIL = 5  # labels per class below which typical images are asked for, not doubts


def suggest(X: np.ndarray, labelled: np.ndarray, labels: np.ndarray, n: int, seed: int = 0,
            *, space: LabelSpace | None = None, avoid: np.ndarray | None = None
            ) -> list[dict[str, Any]]:
    """The ``n`` rows of ``X`` a person should label next (the module doc): dicts with
    ``row``, ``group``, ``reason`` and ``margin`` (None for typical images)."""
    from sklearn.cluster import KMeans

    labelled = np.asarray(labelled, np.int64)
    free = np.setdiff1d(np.arange(len(X)), labelled)
    n = int(min(n, len(free)))
    if n <= 0:
        return []
    avoided = np.zeros(len(X), bool)
    if avoid is not None and len(avoid):
        avoided[np.asarray(avoid, np.int64)] = True
    classes, counts = (np.unique(labels, return_counts=True) if len(labels)
                       else (np.array([]), np.array([])))
    if len(classes) < 2 or counts.mean() < TYPICAL_UNTIL:
        space = space if space is not None else LabelSpace(np.asarray(X), seed)
        return _typical(space.Z, labelled, n, seed, avoided)
    Xn = normalize(X)
    groups = KMeans(n, n_init=3, random_state=seed).fit(Xn[free])
    h = LogisticHead().fit(X[labelled], labels)
    P = np.sort(h.predict_proba(X[free]), axis=1)
    margin = P[:, -1] - P[:, -2]
    out = []
    for g in np.argsort(-np.bincount(groups.labels_, minlength=n), kind="stable"):
        members = _preferred(np.flatnonzero(groups.labels_ == g), free, avoided)
        if not len(members):
            continue
        pick = members[np.argmin(margin[members])]
        out.append({"row": int(free[pick]), "group": int(g),
                    "reason": f"the model hesitates here (margin {margin[pick]:.2f})",
                    "margin": float(margin[pick])})
    return out


def _preferred(members: np.ndarray, rows: np.ndarray | None, avoided: np.ndarray
               ) -> np.ndarray:
    """``members`` less the avoided ones, unless that leaves none (``rows`` maps members to
    rows of the collection when they index a subset)."""
    rows_of = members if rows is None else rows[members]
    keep = members[~avoided[rows_of]]
    return keep if len(keep) else members


def _typical(Z: np.ndarray, labelled: np.ndarray, n: int, seed: int, avoided: np.ndarray
             ) -> list[dict[str, Any]]:
    from sklearn.cluster import KMeans

    from imgatlas.cluster import build_method

    k = int(min(len(labelled) + n, len(Z)))
    # the default clustering's own k-means (10 starts): with one label a cluster, its
    # partition is what gets named (3 starts named fewer images right: Fashion-MNIST 0.686
    # against 0.719, clothing 0.573 against 0.588, a scratch probe on 4 seeds)
    groups = np.asarray(build_method("kmeans", k, {}, seed).fit(Z).labels_)
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
        members = _preferred(members, None, avoided)
        pick = members[np.argmin(((Z[members] - centre) ** 2).sum(1))]
        out.append({"row": int(pick), "group": int(g), "margin": None,
                    "reason": "the most typical image of a group with no label yet"})
        if len(out) == n:
            return out
    # every group holds a label: the least labelled groups (for their size) give more, in
    # rounds, until the budget is spent or no image is left
    taken = set(labelled.tolist()) | {p["row"] for p in out}
    sizes = np.bincount(groups, minlength=k)
    have = np.bincount(groups[labelled], minlength=k).astype(float) if len(labelled) \
        else np.zeros(k)
    for p in out:
        have[p["group"]] += 1
    while len(out) < n and len(taken) < len(Z):
        for g in np.argsort(have / np.maximum(sizes, 1), kind="stable"):
            members = np.array([m for m in np.flatnonzero(groups == g) if m not in taken],
                               int)
            if not len(members):
                continue
            members = _preferred(members, None, avoided)
            centre = Z[groups == g].mean(axis=0)
            pick = int(members[np.argmin(((Z[members] - centre) ** 2).sum(1))])
            taken.add(pick)
            have[g] += 1
            out.append({"row": pick, "group": int(g), "margin": None,
                        "reason": "a typical image of a group with few labels"})
            if len(out) == n:
                break
    return out
