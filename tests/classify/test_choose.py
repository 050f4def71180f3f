"""Cluster-then-label, and the choice among the ways of spreading labels by the labels
themselves (folds held out)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_moons

from imgatlas.classify._choose import choose, estimate_accuracy
from imgatlas.classify._propagate import (
    PROPAGATORS,
    LabelSpace,
    propagate_proba,
    seeded_kmeans,
)
from imgatlas.errors import ConfigError


def blobs(k: int = 4, per: int = 50, spread: float = 0.3, seed: int = 0, dim: int = 16):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, dim)) * 3
    y = np.repeat(np.arange(k), per)
    return (centres[y] + spread * rng.normal(0, 1, (k * per, dim))).astype(np.float32), y


def test_every_method_is_registered_and_gives_probabilities():
    X, y = blobs()
    space = LabelSpace(X)
    seeds = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    assert set(PROPAGATORS.names()) == {"clusters", "spreading", "head", "self-training"}
    for name in PROPAGATORS.names():
        P = propagate_proba(name, space, seeds, y[seeds], 4)
        assert P.shape == (200, 4) and np.allclose(P.sum(1), 1)
        assert (P.argmax(1) == y).mean() > 0.95, name


def test_seeded_kmeans_holds_each_seed_in_its_own_cluster():
    X, y = blobs(k=3, per=30)
    # two seeds in group 0, one in each other group, and a seed that sits in group 1 but
    # is the only one of its kind
    seeds = np.array([0, 1, 30, 60])
    a = seeded_kmeans(X, seeds)
    assert a[seeds].tolist() == [0, 1, 2, 3]
    assert set(a[:30].tolist()) <= {0, 1} and set(a[30:60]) == {2} and set(a[60:]) == {3}


def test_cluster_then_label_merges_a_class_with_several_clusters_and_never_mixes_two():
    X, y = blobs(k=4, per=40)
    merged = np.where(y >= 2, 1, 0)  # two groups per class
    seeds = np.array([0, 40, 80, 120])  # one seed in each group
    P = propagate_proba("clusters", LabelSpace(X), seeds, merged[seeds], 2)
    assert (P.argmax(1) == merged).all()


def test_one_label_a_class_is_decided_by_the_clusters():
    X, y = blobs()
    seeds = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    c = choose(LabelSpace(X), seeds, y[seeds])
    assert c["method"] == "clusters" and c["estimate"] is None and c["estimates"] == {}
    assert "nothing can be held out" in c["reason"]
    assert estimate_accuracy(X, seeds, y[seeds]) is None


def test_the_labels_choose_spreading_where_a_line_cannot_follow_them():
    X, y = make_moons(300, noise=0.05, random_state=0)
    X = np.hstack([X, np.ones((300, 1))]).astype(np.float32)
    rng = np.random.default_rng(0)
    seeds = np.concatenate([rng.choice(np.flatnonzero(y == c), 12, replace=False)
                            for c in (0, 1)])
    c = choose(LabelSpace(X), seeds, y[seeds], methods=("head", "spreading"))
    assert c["method"] == "spreading"
    est = c["estimates"]
    assert est["spreading"]["accuracy"] > est["head"]["accuracy"]
    assert c["estimate"] == est["spreading"] and est["head"]["folds"] == 5
    # and the estimate is about right: spreading labels the whole collection well
    P = propagate_proba("spreading", LabelSpace(X), seeds, y[seeds], 2)
    assert abs((P.argmax(1) == y).mean() - c["estimate"]["accuracy"]) < 0.15


def test_a_class_with_one_label_stays_a_seed_in_every_fold():
    X, y = blobs(k=3)
    seeds = np.concatenate([np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1)[:4],
                            np.flatnonzero(y == 2)[:1]])
    c = choose(LabelSpace(X), seeds, y[seeds])
    assert c["estimate"]["labels"] == 8  # the single label is never held out
    assert c["estimate"]["accuracy"] > 0.9


def test_an_unknown_method_is_one_line():
    X, y = blobs()
    with pytest.raises(ConfigError, match="choose one of"):
        choose(LabelSpace(X), np.array([0, 60]), y[[0, 60]], methods=("magic",))


def test_a_forced_method_is_still_estimated():
    X, y = blobs()
    seeds = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(4)])
    c = choose(LabelSpace(X), seeds, y[seeds], methods=("head",))
    assert c["method"] == "head" and c["reason"] == "as asked" and c["estimate"]["folds"] == 3
