"""Few labels -> the whole collection: four ways to spread them, registered by name.

- ``clusters`` (cluster-then-label): every labelled image is the centre of its own cluster
  in the clustering space, the clusters are refined by k-means with those centres held
  (seeded k-means, Basu et al. 2002, with k = the number of labels), and every image takes
  its cluster's label. A class with several labels has several clusters (merged by the
  label); two classes never share one. With one label a class, picked by ``suggest`` as
  each cluster's typical image, this *is* the collection's clustering, named.
- ``spreading``: label spreading over the kNN graph of the features (Zhou et al. 2004):
  with W the symmetric kNN affinity graph (cosine, k neighbours), S = D^-1/2 W D^-1/2 and
  Y the one-hot seed labels, iterate F <- alpha S F + (1 - alpha) Y.
- ``head``: a logistic regression on the features of the labelled images.
- ``self-training``: spreading and the head averaged, the 30 % most confident images
  taken as pseudo-labels, and a head trained on seeds + pseudo-labels labels everything.

Which one a collection gets is for its labels to say (:mod:`imgatlas.classify._choose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas.classify._heads import LogisticHead
from imgatlas.registry import Registry

NEIGHBOURS = 10
ALPHA = 0.9
ITERATIONS = 30
PSEUDO_SHARE = 0.3  # share of the collection self-training takes as pseudo-labels
SEEDED_ITERATIONS = 20

PROPAGATORS = Registry("propagation method")


@dataclass
class LabelSpace:
    """The collection as propagation sees it: the features ``X``, the clustering space
    (the default reduction of ``cluster_X``, else of ``X``, fitted on first use, seeded) and
    the kNN graph of ``X`` (built on first use). Shared by every method and every fold of
    the choice. ``cluster_X``: the features the collection is clustered on when ``X`` holds
    more (two backbones side by side help the heads, not the clusters)."""

    X: np.ndarray
    seed: int = 0
    cluster_X: np.ndarray | None = field(default=None, repr=False)
    _Z: np.ndarray | None = field(default=None, repr=False)
    _graph: Any = field(default=None, repr=False)

    @property
    def Z(self) -> np.ndarray:
        if self._Z is None:
            self._Z = clustering_space(self.X if self.cluster_X is None else self.cluster_X,
                                       self.seed)
        return self._Z

    @property
    def graph(self) -> Any:
        if self._graph is None:
            self._graph = affinity(self.X)
        return self._graph


def clustering_space(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """``X`` in the space the default clustering uses (its reduction, seeded); the
    L2-normalised features where the collection is too small for it."""
    from imgatlas import defaults
    from imgatlas.reduce import make_reducer

    try:
        Z = make_reducer(defaults.REDUCE, random_state=seed).fit_transform(
            np.asarray(X, np.float32))
    except ValueError:  # too few images for the default reduction
        Z = normalize(X)
    return np.ascontiguousarray(Z, dtype=np.float32)


def propagate_proba(method: str, space: LabelSpace, seeds: np.ndarray,
                    seed_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class scores ``(n, n_classes)`` (rows sum to 1) of every image by ``method``, from
    the labelled rows ``seeds`` with class indices ``seed_labels``."""
    return PROPAGATORS[method].factory(space, np.asarray(seeds, np.int64),
                                       np.asarray(seed_labels, np.int64), n_classes)


@PROPAGATORS.register("clusters", help="cluster-then-label: each labelled image the centre "
                      "of a cluster in the clustering space (seeded k-means), every image "
                      "its cluster's label")
def cluster_then_label(space: LabelSpace, seeds: np.ndarray, seed_labels: np.ndarray,
                       n_classes: int) -> np.ndarray:
    assignment = seeded_kmeans(space.Z, seeds)
    P = np.zeros((len(space.X), n_classes), np.float32)
    P[np.arange(len(P)), seed_labels[assignment]] = 1.0
    return P


def seeded_kmeans(Z: np.ndarray, seeds: np.ndarray,
                  iterations: int = SEEDED_ITERATIONS) -> np.ndarray:
    """For every row of ``Z``, the index (into ``seeds``) of its cluster: k-means with one
    centre per seed, started at the seeds, each seed held in its own cluster."""
    import faiss

    Z = np.ascontiguousarray(Z, dtype=np.float32)
    centres = Z[seeds].copy()
    assignment = np.zeros(len(Z), np.int64)
    for _ in range(iterations):
        index = faiss.IndexFlatL2(Z.shape[1])
        index.add(centres)
        _, nearest = index.search(Z, 1)
        new = nearest[:, 0].astype(np.int64)
        new[seeds] = np.arange(len(seeds))
        if np.array_equal(new, assignment):
            break
        assignment = new
        sums = np.zeros_like(centres, dtype=np.float64)
        np.add.at(sums, assignment, Z)
        counts = np.bincount(assignment, minlength=len(seeds))[:, None]
        centres = (sums / np.maximum(counts, 1)).astype(np.float32)
    return assignment


@PROPAGATORS.register("spreading", help="label spreading over the kNN graph of the features")
def spreading(space: LabelSpace, seeds: np.ndarray, seed_labels: np.ndarray,
              n_classes: int) -> np.ndarray:
    return spread_proba(space.X, seeds, seed_labels, n_classes, graph=space.graph)


@PROPAGATORS.register("head", help="a logistic regression on the labelled images' features")
def head(space: LabelSpace, seeds: np.ndarray, seed_labels: np.ndarray,
         n_classes: int) -> np.ndarray:
    return _head_proba(space.X, seeds, seed_labels, n_classes)


@PROPAGATORS.register("self-training", help="spreading and the head averaged, then a head "
                      "on the labels plus the 30 % most confident of the rest")
def self_training(space: LabelSpace, seeds: np.ndarray, seed_labels: np.ndarray,
                  n_classes: int) -> np.ndarray:
    X = space.X
    P = (spreading(space, seeds, seed_labels, n_classes)
         + _head_proba(X, seeds, seed_labels, n_classes)) / 2
    conf, pseudo = P.max(1), P.argmax(1)
    top = np.setdiff1d(np.argsort(-conf, kind="stable")[:int(PSEUDO_SHARE * len(X))], seeds)
    rows = np.concatenate([seeds, top])
    return _head_proba(X, rows, np.concatenate([seed_labels, pseudo[top]]), n_classes)


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


def head_labels(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, confidence)`` of a logistic head trained on the seeds alone."""
    P = _head_proba(X, seeds, seed_labels, n_classes)
    return P.argmax(1), P.max(1)


def propagate(X: np.ndarray, seeds: np.ndarray, seed_labels: np.ndarray, n_classes: int,
              graph: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, confidence)`` by self-training (the module doc)."""
    P = self_training(LabelSpace(X, _graph=graph), np.asarray(seeds),
                      np.asarray(seed_labels), n_classes)
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
