"""Index and clustering in shards (imgatlas/_shards.py, index/_sharded.py,
cluster/_sharded.py): the same result as one piece, locally and on Ray."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas import api
from imgatlas._shards import StoreFile, map_shards, split
from imgatlas.cluster._sharded import assign, fit_on_sample, sample_rows
from imgatlas.errors import ConfigError
from imgatlas.index._codes import CodeIndex, _unit
from imgatlas.index._sharded import build_sharded, invlists
from imgatlas.store import Workspace


def _store_file(tmp_path, n=3000, d=32, seed=0):
    """Blobs written as a feature store file: row id-1 holds image id."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (6, d))
    X = (centres[rng.integers(0, 6, n)] + rng.normal(0, 0.35, (n, d))).astype(np.float32)
    path = tmp_path / "vectors.f32"
    X.tofile(path)
    return StoreFile(str(path), "float32", d), np.arange(1, n + 1), X


@pytest.mark.parametrize("n", [3000, 70_000])
def test_sharded_ivfpq_equals_one_piece(tmp_path, n, monkeypatch):
    import imgatlas.index._faiss_util as fu
    import imgatlas.index._sharded as sh

    # a training sample smaller than the collection, as at a million images
    monkeypatch.setattr(fu, "TRAIN_SAMPLE", 20_000)
    monkeypatch.setattr(sh, "TRAIN_SAMPLE", 20_000)
    source, ids, X = _store_file(tmp_path, n)
    one = CodeIndex("ivfpq:8", random_state=3).fit(X)
    shards = build_sharded(source, ids, "ivfpq:8", seed=3, shard_size=n // 7 + 1)
    a, b = invlists(one), invlists(shards)
    assert sum(len(i) for i, _ in a) == n
    for (ia, ca), (ib, cb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ca, cb)
    Q = _unit(X[:50])
    assert (one.search(Q, 10)[1] == shards.search(Q, 10)[1]).all()


def test_sharded_ivfpq_merged_from_ray_tasks_equals_local(ray_cluster, tmp_path):
    # locally the shards go straight into one index; on Ray each task's lists are merged
    source, ids, _ = _store_file(tmp_path, 2000)
    local = build_sharded(source, ids, "ivfpq:8", seed=1, shard_size=300)
    on_ray = build_sharded(source, ids, "ivfpq:8", seed=1, shard_size=300, engine="ray")
    for (ia, ca), (ib, cb) in zip(invlists(local), invlists(on_ray), strict=True):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ca, cb)


def test_sharded_kmeans_assignments_equal_one_piece(tmp_path):
    source, ids, X = _store_file(tmp_path, 5000)
    rows = sample_rows(len(ids), 1200, seed=1)
    kw = dict(reduce="l2,pca:8", method="kmeans", k=6, k_range=None, options={}, seed=1)
    # one piece: fitted on the sample, every vector placed at once
    reducer, est, centres, _ = fit_on_sample(X[rows], **kw)
    whole = est.predict(reducer.transform(X))
    parts = list(map_shards(assign, [ids[a:b] for a, b in split(len(ids), 700)],
                            (source, reducer, est, centres)))
    np.testing.assert_array_equal(np.concatenate([lab for lab, _ in parts]), whole)
    # and fitting again from the store file gives the same model
    reducer2, est2, _, _ = fit_on_sample(source.rows(ids[rows]), **kw)
    np.testing.assert_allclose(est2.cluster_centers_, est.cluster_centers_)


def test_split_and_engine_are_checked():
    assert split(5, 2) == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ConfigError, match="shard_size"):
        split(5, 0)
    with pytest.raises(ConfigError, match="engine must be one of"):
        list(map_shards(len, [1], engine="dask"))


def _workspace(tmp_path, cache_dir, n_per=20):
    from conftest import colour_groups

    root = colour_groups(tmp_path / "img", {"red": (220, 30, 30), "green": (30, 200, 40),
                                            "blue": (30, 40, 220)}, n_per)
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    return ws


def test_sharded_stages_on_ray_equal_local(ray_cluster, tmp_path, cache_dir):
    ws = _workspace(tmp_path, cache_dir, 40)
    local = api.cluster(ws, reduce="l2", k=3, sample_size=50, shard_size=17)
    on_ray = api.cluster(ws, reduce="l2", k=3, sample_size=50, shard_size=17, engine="ray")
    assert local["shards"] == on_ray["shards"] == 8 and on_ray["engine"] == "ray"
    with Workspace.open(ws) as w:
        for c in range(3):
            assert (w.cluster_members(local["run_id"], [c])
                    == w.cluster_members(on_ray["run_id"], [c]))
    assert api.evaluate(ws, on_ray["run_id"])["acc"] > 0.9  # three plain colours
    built = api.build_index(ws, codes="ivfpq:4", engine="ray", shard_size=25)
    assert built["n"] == 120 and built["engine"] == "ray"
    (hit,) = api.search(ws, ids=[1], k=3)
    _, _, rows = api.load_features(ws)
    assert {r["label"] for r in hit["results"]} == {rows[0]["label"]}


def test_sharded_options_are_one_line_errors(tmp_path, cache_dir):
    ws = _workspace(tmp_path, cache_dir, 5)
    with pytest.raises(ConfigError, match="plain ivfpq"):
        api.build_index(ws, codes="itq:64", shard_size=4)
    with pytest.raises(ConfigError, match="cannot place new points"):
        api.cluster(ws, reduce="l2", method="agglomerative", k=3, sample_size=10)
    with pytest.raises(ConfigError, match="--within"):
        api.cluster(ws, k=3, sample_size=10, reuse=True)
