from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from imgatlas.evaluate import (
    cluster_accuracy,
    composition,
    confusion_after_matching,
    cophenetic_correlation,
    external_scores,
    find_elbow,
    hopkins,
    hungarian_mapping,
    purity,
)


def test_accuracy_hand_computed():
    # clusters 0->b (2 of 3), 1->a (2 of 2), 2->c (1 of 1): 5 of 6 matched
    t = ["a", "a", "b", "b", "c", "b"]
    p = [1, 1, 0, 0, 2, 2]
    assert cluster_accuracy(t, p) == pytest.approx(5 / 6)
    assert hungarian_mapping(t, p) == {0: "b", 1: "a", 2: "c"}
    # purity: cluster 0 {b,b}=2, 1 {a,a}=2, 2 {c,b}=1 -> 5/6; one cluster for all: 3/6
    assert purity(t, p) == pytest.approx(5 / 6)
    assert purity(t, [0] * 6) == pytest.approx(3 / 6)
    assert cluster_accuracy(t, [0] * 6) == pytest.approx(3 / 6)


def test_accuracy_more_clusters_than_classes_counts_surplus_as_errors():
    t = [0, 0, 0, 0]
    p = [0, 0, 1, 1]
    assert cluster_accuracy(t, p) == 0.5
    assert purity(t, p) == 1.0  # purity rewards over-splitting; ACC does not


@pytest.mark.parametrize("seed", range(5))
def test_invariances_and_bounds(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, 60)
    p = rng.integers(0, 5, 60)
    perm = rng.permutation(5)
    for f in (cluster_accuracy, purity):
        v = f(t, p)
        assert 0 <= v <= 1
        assert f(t, perm[p]) == pytest.approx(v)  # renaming clusters changes nothing
    assert cluster_accuracy(t, t) == 1.0 and purity(t, t) == 1.0
    s = external_scores(t, p)
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(t, p))
    assert s["ari"] == pytest.approx(adjusted_rand_score(t, p))
    assert s["nmi"] == pytest.approx(external_scores(p, t)["nmi"])  # symmetric
    assert {"acc", "nmi", "ari", "purity", "n_clusters", "n_images"} <= set(s)


def test_confusion_and_composition():
    t = ["x", "x", "y", "y", "y"]
    p = [5, 5, 7, 7, 5]
    M, classes, clusters = confusion_after_matching(t, p)
    assert classes == ["x", "y"] and clusters == [5, 7]
    assert M.tolist() == [[2, 0], [1, 2]]
    comp = composition(t, p)
    assert comp[5] == {"size": 3, "shares": {"x": 0.6667, "y": 0.3333}}


def test_hopkins_separates_clustered_from_uniform():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(size=(500, 2))
    blobs = np.concatenate([rng.normal(c, 0.02, size=(250, 2)) for c in ([0, 0], [1, 1])])
    hu = hopkins(uniform, 0.1, random_state=0)
    hb = hopkins(blobs, 0.1, random_state=0)
    assert 0.35 < hu < 0.65
    assert hb > 0.9
    assert hopkins(blobs, 0.1, random_state=0) == hb  # seeded
    assert 0.8 < hopkins(rng.normal(size=(300, 512)) * 0.01 + np.repeat(
        rng.normal(size=(3, 512)), 100, 0), 30) <= 1.0  # high dimension: no overflow


def test_hopkins_hand_computed():
    # X = {0, 1, 3} on a line; sample_size=1 with seed 0 -> we recompute by hand below
    X = np.array([[0.0], [1.0], [3.0]])
    from imgatlas.evaluate.metrics import _hopkins_rng

    rng = _hopkins_rng(0)
    idx = rng.choice(3, 1, replace=False)
    u_pt = rng.uniform([0.0], [3.0], size=(1, 1))
    u = np.min(np.abs(X[:, 0] - u_pt[0, 0]))
    others = np.delete(X[:, 0], idx[0])
    w = np.min(np.abs(others - X[idx[0], 0]))
    assert hopkins(X, 1, random_state=0) == pytest.approx(u / (u + w))


def test_cophenetic_perfect_for_ultrametric_like_data():
    X = np.array([[0.0], [0.1], [10.0], [10.1]])
    assert cophenetic_correlation(X, "average") > 0.99


def test_find_elbow():
    ks = list(range(1, 11))
    sse = [100, 50, 20, 15, 13, 12, 11, 10.5, 10, 9.8]
    assert find_elbow(ks, sse) == 3


def test_silhouettes_of_a_few_rows_are_scikit_learns():
    from sklearn.metrics import silhouette_samples

    from imgatlas.evaluate.internal import internal_validation, silhouettes_of

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 5))
    labels = rng.integers(-1, 4, 300)
    labels[7] = 9  # a cluster of one
    ok = labels != -1
    ref = np.full(300, np.nan)
    ref[ok] = silhouette_samples(Z[ok], labels[ok])
    rows = np.flatnonzero(ok)[:50]
    assert np.allclose(silhouettes_of(Z, labels, rows), ref[rows])
    known = ref.copy()
    known[rows[:10]] = np.nan  # only these are computed
    a, sil = internal_validation(Z, labels, 0, known=known)
    b, _ = internal_validation(Z, labels, 0)
    assert np.isclose(a["silhouette"], b["silhouette"]) and np.allclose(sil[ok], ref[ok])


def test_silhouettes_sampled_above_the_sample_size_and_kept_so_when_images_are_added(
        monkeypatch):
    from sklearn.datasets import make_blobs
    from sklearn.metrics import silhouette_score

    from imgatlas.evaluate import internal

    monkeypatch.setattr(internal, "SILHOUETTE_SAMPLE", 400)
    Z, labels = make_blobs(1500, centers=5, n_features=8, cluster_std=3.0, random_state=0)
    res, sil = internal.internal_validation(Z, labels, 0)
    assert res["silhouette_images"] == 400 and res["silhouette_sampled"]
    assert np.isnan(sil).sum() == 1100
    assert abs(res["silhouette"] - silhouette_score(Z, labels)) < 0.03
    assert internal.internal_validation(Z, labels, 0)[0] == res  # seeded
    small, _ = internal.internal_validation(Z[:300], labels[:300], 0)
    assert small["silhouette_images"] == 300 and not small["silhouette_sampled"]

    # 50 images added to a sampled clustering: the sample keeps its size, nothing n^2
    calls = []
    real = internal.silhouettes_of
    monkeypatch.setattr(internal, "silhouettes_of",
                        lambda Z, labels, rows: calls.append(len(rows)) or real(Z, labels, rows))
    Z2, labels2 = np.vstack([Z, Z[:50] + 0.01]), np.concatenate([labels, labels[:50]])
    grown, sil2 = internal.internal_validation(Z2, labels2, 0,
                                               known=np.concatenate([sil, np.full(50, np.nan)]))
    assert calls == [0] and grown["silhouette_images"] == 400
    # a clustering known exactly gets every added image's silhouette
    calls.clear()
    _, exact = internal.internal_validation(Z[:300], labels[:300], 0)
    grown, _ = internal.internal_validation(
        np.vstack([Z[:300], Z[:20]]), np.concatenate([labels[:300], labels[:20]]), 0,
        known=np.concatenate([exact, np.full(20, np.nan)]))
    assert calls == [20] and grown["silhouette_images"] == 320
