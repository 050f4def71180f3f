"""The faiss plumbing: training large IVF indexes."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas.index import _faiss_util

faiss = pytest.importorskip("faiss")


def _clustered(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d))
    X = centres[rng.integers(0, 200, n)] + 0.3 * rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32)


@pytest.fixture
def two_level_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import faiss.contrib.clustering as fcc

    calls: list[int] = []
    real = fcc.two_level_clustering

    def spy(xt: np.ndarray, nc1: int, nc2: int, **kw: object) -> object:
        calls.append(nc2)
        return real(xt, nc1, nc2, **kw)

    monkeypatch.setattr(fcc, "two_level_clustering", spy)
    monkeypatch.setattr(_faiss_util, "TWO_LEVEL_FROM", 64)
    return calls


def _trained(X: np.ndarray, nlist: int, seed: int = 0) -> object:
    index = faiss.index_factory(X.shape[1], f"IVF{nlist},Flat", faiss.METRIC_L2)
    _faiss_util.train_index(index, X, seed)
    return index


def test_many_lists_are_trained_in_two_levels(two_level_calls: list[int]) -> None:
    X = _clustered(64 * 60)
    index = _trained(X, 64)
    assert two_level_calls == [64]
    ivf = faiss.extract_index_ivf(index)
    assert index.is_trained and ivf.quantizer.ntotal == 64
    # the lists still partition the space: a query's nearest vector is in its nearest lists
    index.add(X)
    ivf.nprobe = 8
    Q = _clustered(300, seed=1)
    exact = faiss.IndexFlatL2(X.shape[1])
    exact.add(X)
    truth = exact.search(Q, 1)[1][:, 0]
    found = index.search(Q, 10)[1]
    assert np.mean([t in f for t, f in zip(truth, found, strict=True)]) >= 0.9
    # the same sample and seed train the same lists (what sharded builds rely on)
    other = _trained(X, 64)  # kept: the extracted IVF is a view into it
    again = faiss.extract_index_ivf(other)
    assert np.array_equal(faiss.downcast_index(ivf.quantizer).reconstruct_n(0, 64),
                          faiss.downcast_index(again.quantizer).reconstruct_n(0, 64))


def test_few_vectors_a_list_train_in_one_level(two_level_calls: list[int]) -> None:
    index = _trained(_clustered(64 * 20), 64)
    assert two_level_calls == [] and index.is_trained


def test_few_lists_train_in_one_level(two_level_calls: list[int]) -> None:
    index = _trained(_clustered(32 * 60), 32)
    assert two_level_calls == [] and index.is_trained


@pytest.mark.parametrize("factory", ["IVF16,PQ8x4", "PQ8x4", "HNSW16_PQ8x4", "PQ8x4,RFlat"])
def test_pq_codes_skip_polysemous_training_and_search_the_same(factory: str) -> None:
    X = _clustered(3000)
    Q = _clustered(200, seed=2)

    def built(polysemous: bool) -> object:
        index = faiss.index_factory(X.shape[1], factory, faiss.METRIC_L2)
        if polysemous:
            index.train(X)  # faiss' default: index_factory asks for polysemous training
        else:
            _faiss_util.train_index(index, X, 0)
        index.add(X)
        _faiss_util.set_search_params(index)
        return index

    plain, polysemous = built(False), built(True)
    pq = faiss.downcast_index(getattr(plain, "storage", None) or getattr(
        plain, "base_index", None) or plain)
    assert not pq.do_polysemous_training
    # renumbered centroids, the same PQ distances: the same neighbours (ties aside)
    D0, I0 = plain.search(Q, 10)
    D1, I1 = polysemous.search(Q, 10)
    np.testing.assert_allclose(D0, D1, rtol=1e-4, atol=1e-5)
    assert np.mean(I0 == I1) > 0.97
