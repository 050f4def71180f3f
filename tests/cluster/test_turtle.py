"""The margin-seeking head (TURTLE): it finds the clusters a linear classifier can tell
apart, its cluster-size prior keeps imbalanced groups whole, it is seeded, and it is a
method of the cluster stage like any other."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas.cluster import KMeansClusterer, TURTLEClusterer
from imgatlas.evaluate import cluster_accuracy

pytest.importorskip("torch")

# larger steps than the defaults so toy data settles in 200 iterations (a test, not a tuning)
FAST = {"learning_rate": 1e-2, "inner_lr": 1e-2, "random_state": 0}


def _sphere_groups(sizes, noise=0.15, d=16, seed=0):
    """Groups of unit vectors around random directions (what the default reduction gives)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(sizes), d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.vstack([c + noise * rng.normal(0, 1, (s, d)) / np.sqrt(d)
                   for c, s in zip(centres, sizes, strict=True)]).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.repeat(np.arange(len(sizes)), sizes)


def test_turtle_recovers_separable_groups_and_is_seeded():
    X, y = _sphere_groups([150, 150, 150])
    tu = TURTLEClusterer(3, n_iter=200, prior="uniform", **FAST).fit(X)
    assert cluster_accuracy(y, tu.labels_) > 0.98
    np.testing.assert_array_equal(tu.predict(X), tu.labels_)
    np.testing.assert_allclose(tu.predict_proba(X).sum(1), 1, atol=1e-5)
    again = TURTLEClusterer(3, n_iter=200, prior="uniform", **FAST).fit(X)
    np.testing.assert_array_equal(again.labels_, tu.labels_)
    assert tu.history_[-1]["fit"] < tu.history_[0]["fit"]  # the learner agrees more


def test_the_kmeans_prior_keeps_imbalanced_groups():
    sizes = [400, 120, 40]
    X, y = _sphere_groups(sizes, seed=1)
    assert cluster_accuracy(y, KMeansClusterer(3, random_state=0).fit(X).labels_) > 0.98
    kmeans_prior = TURTLEClusterer(3, n_iter=200, **FAST).fit(X)
    np.testing.assert_allclose(np.sort(kmeans_prior.prior_), np.sort(np.array(sizes) / 560),
                               atol=0.02)
    assert cluster_accuracy(y, kmeans_prior.labels_) > 0.98
    uniform = TURTLEClusterer(3, n_iter=200, prior="uniform", gamma=50, **FAST).fit(X)
    # the equal-size prior, pushed hard, splits the big group to even the sizes out
    assert cluster_accuracy(y, uniform.labels_) < 0.9


def test_turtle_through_the_cluster_stage(tmp_path, cache_dir):
    from conftest import colour_groups
    from imgatlas import api

    root = colour_groups(tmp_path / "img", {"r": (220, 30, 30), "g": (30, 200, 40),
                                            "b": (30, 40, 220)}, 10)
    api.scan(root, tmp_path / "ws", labels_from_folders=True)
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    res = api.cluster(tmp_path / "ws", method="turtle", k=3,
                      options={"n_iter": 200, "learning_rate": 1e-2, "inner_lr": 1e-2})
    assert res["n_clusters"] == 3 and res["estimator"]["class"] == "TURTLEClusterer"
    assert api.evaluate(tmp_path / "ws")["acc"] == 1.0
