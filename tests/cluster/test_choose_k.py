"""--k auto: the recursive rule finds separated groups, and above SWEEP_SAMPLE images it
sweeps a seeded sample (and says so) with the same answer on clear structure."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from imgatlas.cluster import _select
from imgatlas.cluster._select import choose_k


def blobs(n_per: int, k: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (k, dim))
    return np.concatenate([c + rng.normal(0, 1, (n_per, dim)) for c in centres]
                          ).astype(np.float32)


def test_a_large_collection_is_swept_on_a_sample_with_the_same_answer(monkeypatch):
    X = blobs(300, 7)
    whole = choose_k(X, "kmeans", None, 0)
    assert 6 <= whole["chosen_k"] <= 8 and "sweep_sample" not in whole
    monkeypatch.setattr(_select, "SWEEP_SAMPLE", 600)
    sampled = choose_k(X, "kmeans", None, 0)
    assert sampled["chosen_k"] == whole["chosen_k"] and sampled["sweep_sample"] == 600
    assert "sample of 600 of the 2,100 images" in sampled["reason"]
    assert max(r["k"] for r in sampled["rows"]) == 30


def test_sampled_group_sizes_count_as_the_whole_collection(monkeypatch):
    """The rule's size thresholds see each sampled group at the size it stands for, so a
    sample gives the whole collection's answer."""
    X = blobs(400, 3, seed=1)
    whole = choose_k(X, "kmeans", None, 0)["chosen_k"]
    monkeypatch.setattr(_select, "SWEEP_SAMPLE", 300)
    seen = []
    real = _select._knee

    def spy(Xs, fits, seed):
        seen.append((len(Xs), fits[-1][0] if fits else None))
        return real(Xs, fits, seed)

    monkeypatch.setattr(_select, "_knee", spy)
    assert choose_k(X, "kmeans", None, 0)["chosen_k"] == whole
    assert seen[0] == (300, 30)
    # a group of ~100 sampled rows stands for ~400 images: swept up to k=30 (400 // 10),
    # not 10 (100 // 10)
    assert any(n < 150 and top == 30 for n, top in seen[1:])



def test_the_merge_tree_gives_each_levels_exact_sse():
    """One k-means fit at the top of the range and Ward merges of its clusters: every level's
    SSE is the within-cluster sum of squares of its own labels, never below the level above."""
    X = blobs(40, 6, dim=8, seed=5).astype(np.float64)
    fits = _select.merge_tree_fits(X, range(2, 13), 0)
    assert [f[0] for f in fits] == list(range(2, 13))
    for k, sse, labels in fits:
        assert len(np.unique(labels)) == k
        means = np.stack([X[labels == c].mean(0) for c in range(k)])
        assert np.isclose(sse, ((X - means[labels]) ** 2).sum(), rtol=1e-9)
    sses = [f[1] for f in fits]
    assert all(a >= b for a, b in pairwise(sses))  # fewer clusters, more SSE
    # levels nest: each level's clusters are unions of the next finer level's
    for (_, _, coarse), (_, _, fine) in pairwise(fits):
        for c in np.unique(fine):
            assert len(np.unique(coarse[fine == c])) == 1


def test_two_granularities_are_both_offered():
    """Three well separated kinds, each of three closer sorts: the candidates hold the
    chosen k and every other k the sweep supports, each once, the chosen first, with
    evidence."""
    rng = np.random.default_rng(3)
    kinds = rng.normal(0, 30, (3, 32))
    X = np.concatenate([kind + s + rng.normal(0, 1, (150, 32))
                        for kind in kinds for s in rng.normal(0, 5, (3, 32))]
                       ).astype(np.float32)
    res = choose_k(X, "kmeans", None, 0)
    cands = res["candidates"]
    assert cands[0]["k"] == res["chosen_k"] and "the rule" in cands[0]["by"]
    assert len({c["k"] for c in cands}) == len(cands) >= 2
    assert {res["elbow_k"], res["best_silhouette_k"], 3} <= {c["k"] for c in cands}
    assert all(c["evidence"] for c in cands)
