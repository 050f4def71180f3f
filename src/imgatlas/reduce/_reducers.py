"""Dimensionality reduction as scikit-learn transformers: L2, PCA, UMAP, kNN smoothing."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from imgatlas._validation import check_is_fitted


class _Float32Out:
    """Transformers here return float32 whatever they are given: features are float32 and
    halving memory matters at a million images. Declared, so scikit-learn's checks test
    that float32 stays float32."""

    def __sklearn_tags__(self):  # noqa: ANN204 - scikit-learn's protocol
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class L2Normalizer(_Float32Out, TransformerMixin, BaseEstimator):
    """Scale each row to unit length, so Euclidean distance ranks like cosine."""

    def fit(self, X: Any, y: Any = None) -> L2Normalizer:
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        self.fitted_ = True
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return normalize(X).astype(np.float32, copy=False)


class PCAReducer(_Float32Out, TransformerMixin, BaseEstimator):
    """PCA by component count (int) or by explained-variance fraction (float in (0, 1)).

    A thin wrapper over :class:`sklearn.decomposition.PCA` that caps the count at what the
    data allows (a 64-image folder cannot give 128 components) instead of failing.
    ``whiten=True`` divides each component by its variance to the power ``whiten_power``:
    0.5 is full whitening (sklearn's), smaller powers whiten partially — the dominant
    directions of pretrained features (often style, background, resolution) are damped
    without blowing up the noisy tail as full whitening does.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"),
                         Interval(Real, 0, 1, closed="neither")],
        "whiten": ["boolean"],
        "whiten_power": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components: int | float = 0.95, whiten: bool = False,
                 whiten_power: float = 0.5, random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.whiten_power = whiten_power
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> PCAReducer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        n = self.n_components
        if isinstance(n, Integral):
            # whitening divides by each variance: n points span at most n - 1 directions,
            # and the n-th has none, so it would only amplify rounding noise
            n = int(min(n, X.shape[0] - (1 if self.whiten else 0), X.shape[1]))
        self.pca_ = PCA(n_components=n, random_state=self.random_state,
                        svd_solver="full" if not isinstance(n, int) else "auto").fit(X)
        self.n_components_ = int(self.pca_.n_components_)
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        Z = self.pca_.transform(X)
        if self.whiten:
            Z = Z / np.maximum(self.pca_.explained_variance_, 1e-12) ** self.whiten_power
        return Z.astype(np.float32)


class UMAPReducer(_Float32Out, TransformerMixin, BaseEstimator):
    """UMAP (umap-learn). Its numba kernels compile on the first fit in a process (70-90 s
    with a cold numba cache on 2 cores, ~12 s once umap-learn's cached kernels exist); later
    fits in the same process take a fraction of a second for small inputs."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 2, None, closed="left")],
        "min_dist": [Interval(Real, 0, None, closed="left")],
        "metric": [StrOptions({"euclidean", "cosine", "manhattan", "correlation", "chebyshev"})],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components: int = 10, n_neighbors: int = 15, min_dist: float = 0.0,
                 metric: str = "cosine", random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> UMAPReducer:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        if X.shape[0] < 3:
            raise ValueError(f"UMAP needs at least 3 samples; got n_samples={X.shape[0]}.")
        import umap

        self.umap_ = umap.UMAP(
            n_components=self.n_components, n_neighbors=min(self.n_neighbors, X.shape[0] - 1),
            min_dist=self.min_dist, metric=self.metric, random_state=self.random_state,
            n_jobs=1 if self.random_state is not None else -1,
        ).fit(X)
        self.embedding_ = self.umap_.embedding_.astype(np.float32)
        return self

    def fit_transform(self, X: Any, y: Any = None, **kw: Any) -> np.ndarray:
        return self.fit(X).embedding_

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self.umap_.transform(X).astype(np.float32)


class KNNSmoother(_Float32Out, TransformerMixin, BaseEstimator):
    """Average each (L2-normalised) vector with its nearest neighbours, ``n_iter`` times.

    A feature-space diffusion over the cosine kNN graph (exact search with faiss): an image's
    vector moves towards its neighbourhood, so clusters tighten and stray views of a class
    join it. On the dev sets it raised k-means ACC on all five (benchmarks/RESULTS.md).
    ``transform`` of new points takes one step against the fitted, smoothed collection,
    their neighbours found in the same index as the graph's (exact below ``exact_below``
    fitted points, the HNSW graph above: at a million images placed against a 100,000-image
    sample, exact search was most of the clustering's time).
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "exact_below": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, n_neighbors: int = 10, n_iter: int = 2, exact_below: int = 50_000
                 ) -> None:
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.exact_below = exact_below

    def fit(self, X: Any, y: Any = None) -> KNNSmoother:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **kw: Any) -> np.ndarray:
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        import faiss

        Xn = np.ascontiguousarray(normalize(X), dtype=np.float32)
        k = min(self.n_neighbors, len(Xn) - 1)
        if k > 0:
            index = neighbour_index(Xn, k, self.exact_below)
            neighbours = knn_graph(Xn, k, index=index)
        else:
            index = faiss.IndexFlatIP(Xn.shape[1])
            index.add(Xn)
            neighbours = np.zeros((len(Xn), 0), int)
        Z = Xn
        for _ in range(self.n_iter):
            Z = normalize(Z + Z[neighbours].sum(axis=1)).astype(np.float32)
        self.index_ = index
        self.embedding_ = Z
        return Z

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        Q = np.ascontiguousarray(normalize(X), dtype=np.float32)
        k = min(self.n_neighbors, self.index_.ntotal)
        nn = self.index_.search(Q, k)[1]
        return normalize(Q + self.embedding_[nn].sum(axis=1)).astype(np.float32)


def neighbour_index(Xn: np.ndarray, k: int, exact_below: int = 50_000) -> Any:
    """A faiss index over the unit rows ``Xn`` for their ``k`` nearest by inner product:
    exact (flat) below ``exact_below`` rows; above, an HNSW graph, since exact search is
    quadratic (1M points would take hours on 2 cores)."""
    import faiss

    Xn = np.ascontiguousarray(Xn, dtype=np.float32)
    if len(Xn) < exact_below:
        index = faiss.IndexFlatIP(Xn.shape[1])
    else:
        index = faiss.IndexHNSWFlat(Xn.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    index.add(Xn)
    if hasattr(index, "hnsw"):
        # Measured on the million benchmark's 100k-point sample (128-d, k = 10, 20,000 new
        # points): efSearch 64 -> 32 halves the search (it placed 1M points in 36 s) for
        # recall@10 0.9993 -> 0.9979 and the same cluster as exact neighbours would give
        # for 99.92 -> 99.85 % of the points.
        index.hnsw.efSearch = max(32, 3 * k)
    return index


def knn_graph(Xn: np.ndarray, k: int, exact_below: int = 50_000, index: Any = None
              ) -> np.ndarray:
    """Each row's ``k`` nearest other rows by inner product (cosine for unit vectors), found
    in ``index`` (one :func:`neighbour_index` holding ``Xn``; made when not given). A row is
    removed from its own list by id, not by position: with duplicate images the row itself
    need not come first.
    """
    Xn = np.ascontiguousarray(Xn, dtype=np.float32)
    if index is None:
        index = neighbour_index(Xn, k, exact_below)
    found = index.search(Xn, k + 1)[1]
    not_self = found != np.arange(len(Xn))[:, None]
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)
