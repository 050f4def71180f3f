"""Every clustering method of the source studies, as scikit-learn estimators.

Each wraps the library that does the work (scikit-learn, scipy, faiss, kmedoids) and adds
what none has: automatic eps, fit-on-a-sample for quadratic methods, k-means on faiss for
large n, and one interface (``fit``/``predict``/``fit_predict``, ``labels_``).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from imgatlas._optional import require
from imgatlas._validation import check_is_fitted
from imgatlas.errors import ConfigError


def _nearest(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Index of the nearest row of C for each row of X (exact, via faiss)."""
    import faiss

    index = faiss.IndexFlatL2(C.shape[1])
    index.add(np.ascontiguousarray(C, dtype=np.float32))
    return index.search(np.ascontiguousarray(X, dtype=np.float32), 1)[1][:, 0]


class KMeansClusterer(ClusterMixin, BaseEstimator):
    """k-means++ (scikit-learn) up to ``faiss_above`` samples, faiss k-means beyond."""

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "faiss_above": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, n_init: int = 10, max_iter: int = 300,
                 faiss_above: int = 200_000, random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.faiss_above = faiss_above
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> KMeansClusterer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        _check_k(self.n_clusters, X)
        if X.shape[0] > self.faiss_above:
            self._fit_faiss(np.ascontiguousarray(X, dtype=np.float32))
        else:
            from sklearn.cluster import KMeans

            km = KMeans(self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                        random_state=self.random_state).fit(X)
            self.cluster_centers_ = km.cluster_centers_
            self.labels_ = km.labels_.astype(np.int64)
            self.inertia_ = float(km.inertia_)
            self.n_iter_ = int(km.n_iter_)
        return self

    def _fit_faiss(self, X: np.ndarray) -> None:
        """Lloyd's iterations in faiss on a sample of 1024 points per centroid, seeded with
        k-means++ (faiss' own init is uniform random and often merges two groups), best of
        up to three restarts by inertia; then every point is assigned."""
        import faiss
        from sklearn.cluster import kmeans_plusplus

        seed = 0 if self.random_state is None else int(self.random_state)
        rng = np.random.default_rng(seed)
        n_sample = min(len(X), 1024 * self.n_clusters)
        sample = X[np.sort(rng.choice(len(X), n_sample, replace=False))]
        best = None
        for r in range(min(self.n_init, 3)):
            init, _ = kmeans_plusplus(sample, self.n_clusters, random_state=seed + r)
            km = faiss.Kmeans(X.shape[1], self.n_clusters, niter=min(self.max_iter, 25),
                              seed=seed + r, max_points_per_centroid=1024)
            km.train(sample, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
            if best is None or km.obj[-1] < best.obj[-1]:
                best = km
        self.cluster_centers_ = best.centroids.copy()
        self.n_iter_ = int(min(self.max_iter, 25))
        d, labels = best.index.search(X, 1)
        self.labels_ = labels[:, 0].astype(np.int64)
        self.inertia_ = float(d.sum())

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return _nearest(X, self.cluster_centers_).astype(np.int64)


class GMMClusterer(ClusterMixin, BaseEstimator):
    """Gaussian mixture (scikit-learn); ``bic_`` is kept for choosing k."""

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, covariance_type: str = "full", n_init: int = 1,
                 random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> GMMClusterer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        _check_k(self.n_clusters, X)
        from sklearn.mixture import GaussianMixture

        self.gmm_ = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type,
                                    n_init=self.n_init, random_state=self.random_state,
                                    reg_covar=1e-5).fit(X)
        self.labels_ = self.gmm_.predict(X).astype(np.int64)
        self.bic_ = float(self.gmm_.bic(X))
        self.cluster_centers_ = self.gmm_.means_
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self.gmm_.predict(X).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self.gmm_.predict_proba(X)


def knee_eps(X: np.ndarray, min_samples: int) -> float:
    """DBSCAN's eps from the knee of the sorted k-distance curve (k = min_samples).

    The curve of every point's distance to its k-th neighbour, sorted ascending, bends up
    where points stop being in dense regions; the knee is the point farthest from the chord.
    """
    from sklearn.neighbors import NearestNeighbors

    from imgatlas.evaluate.metrics import find_elbow

    k = min(min_samples, X.shape[0] - 1)
    d = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)[0][:, k]
    d = np.sort(d)
    # Increasing and convex: the knee is the point farthest below the chord, as for SSE.
    i = find_elbow(list(range(len(d))), d)
    return float(d[i])


class DBSCANClusterer(ClusterMixin, BaseEstimator):
    """DBSCAN (scikit-learn); ``eps=None`` takes it from the k-distance knee. Noise is -1."""

    _parameter_constraints: dict = {
        "eps": [Interval(Real, 0, None, closed="neither"), None],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "metric": [str],
    }

    def __init__(self, eps: float | None = None, min_samples: int = 10,
                 metric: str = "euclidean") -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric

    def fit(self, X: Any, y: Any = None) -> DBSCANClusterer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        check_min_samples(X, 2, "DBSCAN")
        from sklearn.cluster import DBSCAN

        # identical points give a knee at distance 0, which DBSCAN refuses: one tiny radius
        eps = self.eps if self.eps is not None else knee_eps(X, self.min_samples)
        self.eps_ = max(float(eps), 1e-12)
        db = DBSCAN(eps=self.eps_, min_samples=self.min_samples,
                    metric=scipy_metric(self.metric)).fit(X)
        self.labels_ = db.labels_.astype(np.int64)
        self.core_sample_indices_ = db.core_sample_indices_
        self.noise_share_ = float(np.mean(self.labels_ == -1))
        return self


class HDBSCANClusterer(ClusterMixin, BaseEstimator):
    """HDBSCAN (scikit-learn). Noise is -1; ``probabilities_`` as in the library."""

    _parameter_constraints: dict = {
        "min_cluster_size": [Interval(Integral, 2, None, closed="left")],
        "min_samples": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, min_cluster_size: int = 15, min_samples: int | None = None) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples

    def fit(self, X: Any, y: Any = None) -> HDBSCANClusterer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        from sklearn.cluster import HDBSCAN

        check_min_samples(X, 2, "HDBSCAN")
        # a collection smaller than the smallest cluster is one cluster's worth, not an error
        size = min(self.min_cluster_size, X.shape[0])
        h = HDBSCAN(min_cluster_size=max(2, size),
                    min_samples=None if self.min_samples is None
                    else min(self.min_samples, X.shape[0]), copy=True).fit(X)
        self.labels_ = h.labels_.astype(np.int64)
        self.probabilities_ = h.probabilities_
        self.noise_share_ = float(np.mean(self.labels_ == -1))
        return self


class KMedoidsClusterer(ClusterMixin, BaseEstimator):
    """k-medoids by FasterPAM (package ``kmedoids``, GPL-3.0: an optional extra) on any
    scipy metric. Above ``max_samples`` it fits on a random sample and assigns the rest to
    the nearest medoid, because the distance matrix is quadratic in memory."""

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "metric": [str],
        "max_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, metric: str = "euclidean",
                 max_samples: int = 10_000, random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> KMedoidsClusterer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        _check_k(self.n_clusters, X)
        kmedoids = require("kmedoids", "kmedoids", "the k-medoids method")
        from scipy.spatial.distance import cdist, pdist, squareform

        rng = np.random.default_rng(self.random_state)
        fit_idx = (np.sort(rng.choice(X.shape[0], self.max_samples, replace=False))
                   if X.shape[0] > self.max_samples else np.arange(X.shape[0]))
        S = X[fit_idx].astype(np.float64)
        D = squareform(pdist(S, metric=self.metric))
        seed = 0 if self.random_state is None else int(self.random_state)
        # int(): kmedoids rejects NumPy integers (a k from a sweep or a grid search)
        res = kmedoids.fasterpam(D, int(self.n_clusters), random_state=seed)
        self.medoid_indices_ = fit_idx[np.asarray(res.medoids)]
        self.cluster_centers_ = X[self.medoid_indices_]
        self.labels_ = cdist(X, self.cluster_centers_, metric=self.metric).argmin(1).astype(
            np.int64)
        self.inertia_ = float(res.loss)
        return self

    def predict(self, X: Any) -> np.ndarray:
        from scipy.spatial.distance import cdist

        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return cdist(X, self.cluster_centers_, metric=self.metric).argmin(1).astype(np.int64)


LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
METRICS = ("euclidean", "cityblock", "manhattan", "chebyshev", "cosine")


class Agglomerative(ClusterMixin, BaseEstimator):
    """Hierarchical clustering via scipy ``linkage``, cut by k or by distance.

    ``centroid``, ``median`` and ``ward`` are defined for Euclidean distance only. Above
    ``max_samples`` the tree is built on a seeded random sample (its memory and time are
    quadratic) and every other image joins the cluster whose sample mean is nearest.
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "distance_threshold": [Interval(Real, 0, None, closed="left"), None],
        "linkage": [StrOptions(set(LINKAGES))],
        "metric": [StrOptions(set(METRICS))],
        "max_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int | None = 8, distance_threshold: float | None = None,
                 linkage: str = "ward", metric: str = "euclidean", max_samples: int = 10_000,
                 random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.distance_threshold = distance_threshold
        self.linkage = linkage
        self.metric = metric
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> Agglomerative:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        if (self.n_clusters is None) == (self.distance_threshold is None):
            raise ConfigError("Agglomerative needs exactly one of n_clusters and "
                              "distance_threshold.")
        metric = scipy_metric(self.metric)
        if self.linkage in ("centroid", "median", "ward") and metric != "euclidean":
            raise ConfigError(f"The '{self.linkage}' linkage is defined for the euclidean "
                              f"metric only. Got {self.metric!r} instead.")
        check_min_samples(X, 2, "Agglomerative")
        if self.n_clusters is not None:
            _check_k(self.n_clusters, X)
        from scipy.cluster.hierarchy import cophenet, fcluster, linkage
        from scipy.spatial.distance import pdist

        rng = np.random.default_rng(self.random_state)
        fit_idx = (np.sort(rng.choice(X.shape[0], self.max_samples, replace=False))
                   if X.shape[0] > self.max_samples else np.arange(X.shape[0]))
        S = X[fit_idx].astype(np.float64)
        D = pdist(S, metric=metric)
        self.linkage_matrix_ = linkage(D, method=self.linkage)
        self.cophenetic_correlation_ = float(cophenet(self.linkage_matrix_, D)[0])
        if self.n_clusters is not None:
            sub = fcluster(self.linkage_matrix_, self.n_clusters, criterion="maxclust")
        else:
            sub = fcluster(self.linkage_matrix_, self.distance_threshold, criterion="distance")
        sub = np.unique(sub, return_inverse=True)[1].astype(np.int64)
        self.fit_indices_ = fit_idx
        if len(fit_idx) == X.shape[0]:
            self.labels_ = sub
        else:
            means = np.stack([S[sub == c].mean(0) for c in range(sub.max() + 1)])
            self.labels_ = _nearest(X, means).astype(np.int64)
            self.labels_[fit_idx] = sub
        return self


def scipy_metric(name: str) -> str:
    """scipy's name for a distance: it calls manhattan ``cityblock``."""
    return "cityblock" if name == "manhattan" else name


def check_min_samples(X: np.ndarray, n: int, who: str) -> None:
    """Too few rows is a ValueError naming the count (scikit-learn's wording)."""
    if X.shape[0] < n:
        raise ValueError(f"{who} needs at least {n} samples; got n_samples={X.shape[0]}.")


def _check_k(k: int, X: np.ndarray) -> None:
    if k > X.shape[0]:
        raise ConfigError(f"Cannot make {k} clusters from {X.shape[0]} images.")
