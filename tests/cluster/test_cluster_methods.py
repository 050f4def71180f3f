from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.pipeline import make_pipeline

from imgatlas.cluster import (
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
    SCANClusterer,
    knee_eps,
    sweep_k,
)
from imgatlas.errors import ConfigError, ImgatlasError, NotFittedError
from imgatlas.evaluate import cluster_accuracy
from imgatlas.reduce import L2Normalizer, PCAReducer, make_reducer


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=400, centers=4, n_features=8, cluster_std=0.6, random_state=3)
    return X.astype(np.float32), y


try:
    import kmedoids  # noqa: F401  (optional GPL extra)

    HAS_KMEDOIDS = True
except ImportError:
    HAS_KMEDOIDS = False
needs_kmedoids = pytest.mark.skipif(not HAS_KMEDOIDS, reason="optional 'kmedoids' not installed")
try:
    import torch  # noqa: F401  (optional: training only)

    HAS_TORCH = True
except ImportError:
    HAS_TORCH = False
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="optional 'torch' not installed")
SCAN = pytest.param(SCANClusterer(4, epochs=30), marks=needs_torch)

ESTIMATORS = [
    KMeansClusterer(4), GMMClusterer(4), DBSCANClusterer(min_samples=8),
    HDBSCANClusterer(min_cluster_size=20), pytest.param(KMedoidsClusterer(4),
                                                        marks=needs_kmedoids),
    *[Agglomerative(4, linkage=m) for m in
      ("single", "complete", "average", "weighted", "centroid", "median", "ward")],
    Agglomerative(4, linkage="average", metric="cosine"),
    Agglomerative(4, linkage="complete", metric="manhattan"),
    Agglomerative(4, linkage="average", metric="chebyshev"),
    SCAN,
]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: repr(e))
def test_every_method_recovers_separated_blobs(est, blobs):
    X, y = blobs
    labels = clone(est).fit_predict(X)
    assert cluster_accuracy(y, labels) > 0.97


@pytest.mark.parametrize("est", [*ESTIMATORS[:5], SCAN], ids=lambda e: type(e).__name__)
def test_estimator_contract(est, blobs):
    X, _ = blobs
    params = est.get_params()
    fresh = clone(est)
    assert fresh.get_params() == params
    assert not [k for k in vars(fresh) if k.endswith("_")]  # __init__ sets no learned state
    assert fresh.fit(X) is fresh
    if hasattr(fresh, "predict") and type(fresh).__name__ not in ("DBSCANClusterer",
                                                                 "HDBSCANClusterer"):
        with pytest.raises(NotFittedError):
            clone(est).predict(X)
        assert (fresh.predict(X) == fresh.labels_).mean() > 0.99


@pytest.mark.parametrize("est", [
    KMeansClusterer(4, random_state=7), GMMClusterer(4, random_state=7),
    pytest.param(KMedoidsClusterer(4, random_state=7), marks=needs_kmedoids),
    pytest.param(SCANClusterer(4, epochs=10, random_state=7), marks=needs_torch),
], ids=lambda e: type(e).__name__)
def test_determinism_under_seed(est, blobs):
    X, _ = blobs
    a = clone(est).fit(X).labels_
    b = clone(est).fit(X).labels_
    assert np.array_equal(a, b)


@needs_torch
def test_scan_keeps_the_lowest_loss_head_and_trains_on_a_sample_above_max_train(blobs):
    X, y = blobs
    est = SCANClusterer(4, n_heads=3, epochs=20, max_train=200, random_state=1).fit(X)
    assert est.best_head_ == int(np.argmin(est.head_losses_)) and len(est.head_losses_) == 3
    np.testing.assert_allclose(np.linalg.norm(est.prototypes_, axis=1), 1, rtol=1e-5)
    # Trained on 200 of 400 images; all 400 are assigned, and the unseen half as well.
    assert len(est.labels_) == len(X) and cluster_accuracy(y, est.labels_) > 0.97
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert np.array_equal(proba.argmax(1), est.predict(X))


def test_scan_without_torch_says_how_to_install(blobs, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ImgatlasError, match=r"'train' extra: pip install torch==2.13.0"):
        SCANClusterer(4).fit(blobs[0])


def test_pipeline_composition(blobs):
    X, y = blobs
    pipe = make_pipeline(L2Normalizer(), PCAReducer(4), KMeansClusterer(4))
    assert cluster_accuracy(y, pipe.fit_predict(X)) > 0.95
    p = PCAReducer(0.9).fit(X)
    assert p.explained_variance_ratio_.sum() >= 0.9 and p.n_components_ < 8


def test_k_sweep_picks_true_k(blobs):
    X, _ = blobs
    res = sweep_k(X, range(2, 9))
    assert res["chosen_k"] == 4 and res["reason"]
    assert [r["k"] for r in res["rows"]] == list(range(2, 9))
    gm = sweep_k(X, range(2, 7), method="gmm")
    assert gm["best_bic_k"] == 4


def test_knee_eps_is_between_within_and_between_distances(blobs):
    X, _ = blobs
    eps = knee_eps(X, 8)
    assert 0.3 < eps < 5
    assert DBSCANClusterer(min_samples=8).fit(X).noise_share_ < 0.1


@needs_kmedoids
def test_quadratic_methods_fit_on_a_sample(blobs):
    X, y = blobs
    ag = Agglomerative(4, linkage="ward", max_samples=100).fit(X)
    assert len(ag.fit_indices_) == 100 and cluster_accuracy(y, ag.labels_) > 0.97
    km = KMedoidsClusterer(4, max_samples=80).fit(X)
    assert cluster_accuracy(y, km.labels_) > 0.97


@needs_kmedoids
def test_kmedoids_takes_a_numpy_integer_k(blobs):
    X, y = blobs  # k as a sweep or a grid search hands it: kmedoids itself rejects np.int64
    assert cluster_accuracy(y, KMedoidsClusterer(np.int64(4)).fit_predict(X)) > 0.97


def test_bad_parameters_are_clear(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_clusters"):
        KMeansClusterer(0).fit(X)
    with pytest.raises(ConfigError, match="euclidean metric only"):
        Agglomerative(3, linkage="ward", metric="cosine").fit(X)
    with pytest.raises(ConfigError, match="Cannot make 500 clusters"):
        KMeansClusterer(500).fit(X)
    with pytest.raises(ConfigError, match="Unknown reduction 'tsne:2'"):
        make_reducer("tsne:2")
    with pytest.raises(ConfigError, match="'power' parameter of reduction 'pca-whiten' must "
                                          "be between 0 and 1"):
        make_reducer("pca-whiten:8:2")
    for bad in ("pca:0", "knn-smooth:-2", "umap:0"):
        with pytest.raises(ConfigError, match="must be"):
            make_reducer(bad)
    for bad in ("pca:8:0.5", "pca-whiten:8:0.2:1"):
        with pytest.raises(ConfigError, match="takes at most"):
            make_reducer(bad)
    with pytest.raises(ConfigError, match="'n' parameter of reduction 'pca' must be"):
        make_reducer("pca:x")


def test_partial_whitening_matches_its_definition(blobs):
    from sklearn.decomposition import PCA

    X, _ = blobs
    full = make_reducer("pca-whiten:6").fit_transform(X)
    part = make_reducer("pca-whiten:6:0.15").fit_transform(X)
    ref = PCA(6, random_state=0).fit(X)
    Z = ref.transform(X)
    np.testing.assert_allclose(full, Z / ref.explained_variance_ ** 0.5, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(part, Z / ref.explained_variance_ ** 0.15, rtol=1e-3, atol=1e-4)
    assert np.allclose(full.var(0, ddof=1), 1, atol=1e-3)  # whitened: unit variances
    v = part.var(0, ddof=1)
    assert v[0] > v[-1] and v[0] / v[-1] < Z.var(0)[0] / Z.var(0)[-1]  # damped, not flat
    # a tiny collection: never a component without variance to divide by
    few = make_reducer("pca-whiten:128:0.15").fit(X[:5])
    assert few.n_components_ == 4


def test_faiss_kmeans_path(blobs):
    X, y = blobs
    km = KMeansClusterer(4, faiss_above=100).fit(X)
    assert cluster_accuracy(y, km.labels_) > 0.97


def test_knn_smoother_tightens_clusters(blobs):
    from sklearn.metrics import silhouette_score

    from imgatlas.reduce import KNNSmoother

    X, y = blobs
    noisy = X + np.random.default_rng(0).normal(0, 3, X.shape).astype(np.float32)
    sm = KNNSmoother(10, 2)
    Z = sm.fit_transform(noisy)
    assert np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)
    base = L2Normalizer().fit_transform(noisy)
    assert silhouette_score(Z, y) > silhouette_score(base, y)
    q = sm.transform(noisy[:5])
    assert q.shape == (5, 8)
    assert (KMeansClusterer(4).fit(Z).predict(q) == KMeansClusterer(4).fit(Z).labels_[:5]).all()
    assert isinstance(make_reducer("knn-smooth:5:1"), KNNSmoother)


def test_knn_smoother_graph_is_approximate_only_above_its_limit(blobs):
    """The HNSW graph used for large collections finds (nearly) the exact neighbours and
    never lists a point as its own neighbour."""
    from imgatlas.reduce import KNNSmoother, knn_graph

    X, _ = blobs
    exact = KNNSmoother(10, 2).fit(X)
    approx = KNNSmoother(10, 2, exact_below=2).fit(X)
    Xn = L2Normalizer().fit_transform(X).astype(np.float32)
    g_exact = knn_graph(Xn, 10)
    g_approx = knn_graph(Xn, 10, exact_below=2)
    assert not (g_approx == np.arange(len(X))[:, None]).any()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(g_exact, g_approx,
                                                                  strict=True)])
    assert overlap > 0.9
    assert np.abs(exact.embedding_ - approx.embedding_).max() < 0.2


def test_knn_graph_never_lists_a_row_as_its_own_neighbour_with_duplicates():
    from imgatlas.reduce import knn_graph

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8)).astype(np.float32)
    X = np.vstack([X, X[:10]])  # rows 30..39 duplicate rows 0..9: ties at distance zero
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    for exact_below in (10_000, 2):
        g = knn_graph(X, 3, exact_below=exact_below)
        assert not (g == np.arange(len(X))[:, None]).any()
        assert all(i + 30 in g[i] and i in g[i + 30] for i in range(10))  # its twin is first
