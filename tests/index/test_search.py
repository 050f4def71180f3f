from __future__ import annotations

import json
import os

import numpy as np
import pytest

from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.evaluate.retrieval import average_precision, pr_curve, reciprocal_rank
from imgatlas.index import CodeIndex, parse_spec


def test_average_precision_hand_computed():
    rel = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], bool)
    # q0: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2;  q1: one hit at rank 4, 2 relevant exist
    ap = average_precision(rel, np.array([2, 2]))
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx((1 / 4) / 2)
    assert reciprocal_rank(rel).tolist() == [1.0, 0.25]
    levels, prec = pr_curve(rel[:1], np.array([2]))
    assert levels[0] == 0 and prec[0] == 1.0 and prec[-1] == pytest.approx(2 / 3)


def test_specs():
    assert str(parse_spec("itq:512+smooth")) == "itq:512+smooth"
    assert str(parse_spec("itq:512+learn")) == "itq:512+learn"
    assert parse_spec("itq:64+dsh").learned and not parse_spec("itq:64").learned
    assert parse_spec("pq").size == 64
    assert str(parse_spec("umap:8@500")) == "umap:8@500"
    assert parse_spec("umap").size == 16 and parse_spec("ivfpq:16+rerank").rerank
    for bad in ("itq:12", "lsh:8", "pca:x", "pca:64+learn", "itq:64+smooth+learn",
                "pca:64@100", "itq:64+rerank", "pca:8+dsh", "umap:8+smooth", "umap:8@3"):
        with pytest.raises(ConfigError):
            parse_spec(bad)


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 64)).astype(np.float32)
    y = np.repeat(np.arange(5), 60)
    X = centres[y] + 0.6 * rng.normal(size=(300, 64)).astype(np.float32)
    return X, y


@pytest.mark.parametrize("spec", ["float", "pca:16", "pq:8", "ivfpq:8", "hnswpq:8", "sign:32",
                                  "itq:32", "hnsw:16", "itq:32+smooth", "float+smooth",
                                  "itq:32+learn", "itq:32+dsh", "pq:8+rerank", "ivfpq:8+rerank",
                                  "hnswpq:8+rerank", "umap:4", "umap:4@120"])
def test_every_family_retrieves_its_class(clustered, spec):
    from imgatlas.index import retrieval_scores

    X, y = clustered
    ci = CodeIndex(spec).fit(X)
    s = retrieval_scores(ci, X, y.astype(str), n_queries=100, latency_queries=20)
    # plain sign codes spend bits on noise directions (why ITQ exists): a lower bar
    assert s["map"] > (0.3 if spec.startswith("sign") else 0.7), (spec, s["map"])
    assert 0 < s["ms_per_query_p50"] <= s["ms_per_query_p99"]
    b = ci.bytes_per_image()
    if spec.startswith(("sign", "itq")):
        assert b["code_bytes"] == 4
    if spec == "float":
        exact = CodeIndex("float").fit(X).search(X[:5], 5)[1]
        assert (exact[:, 0] == np.arange(5)).all()
    if spec.endswith("+rerank"):  # the PQ code plus the full vector it re-ranks on
        assert b["code_bytes"] >= 4 * X.shape[1]
    if spec.startswith(("pq:", "ivfpq:", "hnswpq:")) and not spec.endswith("+rerank"):
        # M sub-quantisers (coarser on a small collection); an IVF list number is where a
        # code is stored, not part of it
        from imgatlas.index._faiss_util import pq_bits as _pq_bits

        m_bits = int(spec.split(":")[1]) * _pq_bits(len(X))
        assert b["code_bytes"] == -(-m_bits // 8), (spec, b)
    if spec.startswith("umap"):  # the model UMAP needs to place queries is the cost
        assert b["code_bytes"] == 16 and b["fixed_bytes"] > 4 * X.shape[1] * 100


def test_rerank_recovers_exact_neighbours(clustered):
    X, _ = clustered
    exact = CodeIndex("float").fit(X).search(X[:40], 5)[1]
    # 300 training vectors only allow 2-bit sub-quantisers: coarse codes, many ties
    coarse = CodeIndex("pq:16").fit(X).search(X[:40], 5)[1]
    fine = CodeIndex("pq:16+rerank").fit(X).search(X[:40], 5)[1]

    def recall(found):
        return np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, exact, strict=True)])

    assert recall(fine) > 2 * recall(coarse) and recall(fine) > 0.8


def test_umap_codes_query_members_by_their_embedding(clustered, tmp_path):
    X, y = clustered
    ci = CodeIndex("umap:4@150").fit(X)
    # a member's query is its stored position, so it finds itself first at distance 0
    scores, rows = ci.search(ci.member_queries(np.arange(10), X[:10]), 3, prepared=True)
    assert (rows[:, 0] == np.arange(10)).all() and np.allclose(scores[:, 0], 0, atol=1e-5)
    ci.save(tmp_path)
    again = CodeIndex.load(tmp_path, "umap:4@150", ci.factory_, ci.n_, ci.dim_)
    new = X[:20] + 0.01
    assert np.array_equal(ci.search(new, 5)[1], again.search(new, 5)[1])
    assert (y[again.search(new, 5)[1]] == y[:20, None]).mean() > 0.9


def test_index_search_evaluate_through_workspace(image_dir, tmp_path, cache_dir, capsys):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    with pytest.raises(WorkspaceError, match="no search index"):
        api.search(ws, ids=[1])
    res = api.build_index(ws, codes="float")
    assert res["n"] == 12 and os.path.islink(res["path"])
    hits = api.search(ws, ids=[1], k=3)[0]["results"]
    assert len(hits) == 3 and all(h["id"] != 1 for h in hits)
    query = sorted(image_dir.rglob("*.png"))[0]
    top = api.search(ws, [query], k=1, cache_dir=cache_dir)[0]["results"][0]
    assert top["path"].endswith(query.name) and top["score"] == pytest.approx(1, abs=1e-5)
    assert top["exact"]
    api.build_index(ws, codes="itq:8+learn")  # a code that may not rank the copy first
    res = api.search(ws, [query], k=4, codes="itq:8+learn", cache_dir=cache_dir)[0]
    assert res["results"][0]["path"].endswith(query.name) and res["results"][0]["exact"]
    assert res["results"][0]["score"] == 0 and len(res["results"]) == 4
    assert not any(h["exact"] for h in res["results"][1:])
    assert len({h["id"] for h in res["results"]}) == 4
    api.build_index(ws, codes="float")  # rebuild: the link moves, the old build is removed
    assert len(list((ws / "index").glob("float@*"))) == 1
    ev = api.evaluate_retrieval(ws, ["float", "pca:4"], n_queries=12)
    for m in ev["codes"].values():
        assert {"map", "mrr", "p_at_10", "ms_per_query_p50", "bytes_per_image"} <= set(m)
    assert main(["search", "-w", str(ws), "--id", "2", "--k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["results"]) == 2
    assert main(["search", "-w", str(ws), str(tmp_path / "nope.jpg")]) != 0
    assert "Cannot read" in capsys.readouterr().err


def test_corrupt_index_is_a_clear_error(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    res = api.build_index(ws, codes="float")
    with open(os.path.join(res["path"], "index.faiss"), "wb") as f:
        f.write(b"junk")
    with pytest.raises(WorkspaceError, match="damaged"):
        api.search(ws, ids=[1])


def test_learned_codes_are_compact_and_consistent(clustered):
    """itq+learn keeps B/8 bytes per image; its faiss-applied query map equals the fitted
    ridge map; a query equal to a collection image finds that image first."""
    from sklearn.preprocessing import normalize

    X, _ = clustered
    ci = CodeIndex("itq:32+learn").fit(X)
    b = ci.bytes_per_image()
    assert b["code_bytes"] == 4 and b["query_expansion_bytes"] == 0
    assert b["fixed_bytes"] == 4 * (64 * 32 + 32)
    Q = normalize(X[:7]).astype(np.float32)
    fam = ci.family_
    np.testing.assert_allclose(fam._query_map().apply(Q),
                               Q @ fam.query_weights + fam.query_bias, atol=1e-4)
    codes = ci.transform_queries(X[:7])
    assert codes.dtype == np.uint8 and codes.shape == (7, 4)
    scores, rows = ci.search(X[:50], 5)
    assert (scores <= 0).all() and (np.diff(scores, axis=1) <= 0).all()  # -Hamming, sorted


def test_learned_map_beats_raw_itq_on_new_queries():
    """On queries never fitted, the learned map + expansion must do better than plain ITQ
    of the same size (the reason +learn exists); both see the same held-out split."""
    from imgatlas.index import retrieval_scores

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(8, 64)).astype(np.float32)
    y = np.repeat(np.arange(8), 150)
    X = centres[y] + 1.3 * rng.normal(size=(len(y), 64)).astype(np.float32)
    perm = rng.permutation(len(y))
    q, fit = perm[:200], perm[200:]
    got = {}
    for spec in ("itq:32", "itq:32+learn", "itq:32+dsh"):
        ci = CodeIndex(spec).fit(X[fit])
        got[spec] = retrieval_scores(ci, X[fit], y[fit].astype(str), n_queries=200,
                                     latency_queries=5, queries=X[q],
                                     query_labels=y[q].astype(str))["map"]
    assert got["itq:32+learn"] > got["itq:32"] + 0.02, got
    assert got["itq:32+dsh"] > got["itq:32"] + 0.02, got


def test_itq_projection_balances_bits_and_keeps_neighbours(clustered):
    from imgatlas.index.families import itq_projection

    X, y = clustered
    Z = itq_projection(X, 16, random_state=0)
    assert Z.shape == (len(X), 16)
    assert np.abs((Z > 0).mean(0) - 0.5).max() <= 0.01  # median-centred: balanced bits
    np.testing.assert_array_equal(Z, itq_projection(X, 16, random_state=0))  # seeded
    B = np.sign(Z)
    nearest = np.argsort(-(B @ B.T) + 1e6 * np.eye(len(X)), axis=1)[:, 0]
    assert (y[nearest] == y).mean() > 0.9


def test_dsh_training_reduces_its_loss_and_keeps_shapes():
    from imgatlas.index._dsh import train_dsh

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)).astype(np.float32)
    y = np.repeat(np.arange(4), 50)
    X = centres[y] + 0.8 * rng.normal(size=(200, 16)).astype(np.float32)
    # neighbours: 5 random members of the same group (stands in for the kNN graph)
    nb = np.stack([rng.choice(np.flatnonzero(y == c), 5) for c in y])
    W0 = 0.1 * rng.normal(size=(16, 8)).astype(np.float32)
    b0 = np.zeros(8, np.float32)

    def pair_gap(W, b):  # mean squared distance of neighbour pairs minus that of random pairs
        u = X @ W + b
        u *= np.sqrt(8) / np.linalg.norm(u, axis=1).mean()
        return (((u[:, None] - u[nb]) ** 2).sum(-1).mean()
                - ((u - u[rng.permutation(200)]) ** 2).sum(-1).mean())

    W, b = train_dsh(X, W0, b0, nb, epochs=30, lr=1e-2, batch=64)
    assert W.shape == W0.shape and b.shape == b0.shape and not np.shares_memory(W, W0)
    assert pair_gap(W, b) < pair_gap(W0, b0)
    codes = np.sign(X @ W + b)
    same = [(codes[i] == codes[j]).mean() for i in range(200) for j in nb[i]]
    assert np.mean(same) > 0.8


def test_holdout_protocol_and_default_codes(image_dir, tmp_path, cache_dir):
    from imgatlas.defaults import codes as default_codes

    assert default_codes(100_000) == "itq:512+dsh"
    assert default_codes(500) == "itq:248+dsh" and default_codes(12) == "itq:8+dsh"
    assert default_codes(100_000, dim=100) == "itq:96+dsh"  # never more bits than dims
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    loo = api.evaluate_retrieval(ws, ["float"], n_queries=12)
    held = api.evaluate_retrieval(ws, ["float"], n_queries=12, holdout=0.25)
    assert loo["protocol"] == "leave-one-out"
    assert held["protocol"].startswith("held-out: 3 queries never fitted vs 9 images")
    assert held["codes"]["float"]["n_queries"] == 3
    assert api.evaluate_retrieval(ws)["codes"].keys() == {"itq:8+dsh"}
    res = api.build_index(ws)
    assert res["codes"] == "itq:8+dsh" and res["code_bytes"] == 1
    hits = api.search(ws, ids=[1], k=3)[0]["results"]
    assert len(hits) == 3 and all(h["id"] != 1 for h in hits)
    with pytest.raises(ConfigError, match="holdout"):
        api.evaluate_retrieval(ws, ["float"], holdout=1.0)


def test_learned_codes_use_a_binary_graph_for_large_collections(clustered, monkeypatch,
                                                                tmp_path):
    """Above binary_graph_from images the codes go into a binary HNSW graph; it must find
    what the exhaustive Hamming search finds, and survive a save/load round trip."""
    X, y = clustered
    flat = CodeIndex("itq:32+learn").fit(X)
    from imgatlas.index.families import LearnedITQCodes

    monkeypatch.setattr(LearnedITQCodes, "binary_graph_from", 10)
    graph = CodeIndex("itq:32+learn").fit(X)
    assert "BinaryHNSW32" in graph.factory_ and "BinaryFlat" in flat.factory_
    np.testing.assert_array_equal(graph.family_._codes(), flat.family_._codes())
    top_flat = flat.search(X[:40], 10)[1]
    top_graph = graph.search(X[:40], 10)[1]
    same_class = (y[top_graph] == y[:40, None]).mean()
    assert same_class >= (y[top_flat] == y[:40, None]).mean() - 0.05
    graph.save(tmp_path)
    again = CodeIndex.load(tmp_path, "itq:32+learn", graph.factory_, graph.n_, graph.dim_)
    np.testing.assert_array_equal(again.search(X[:40], 10)[1], top_graph)


def test_search_breadth_reaches_faiss_and_refuses_knobs_an_index_lacks(clustered):
    import faiss

    X, y = clustered
    graph = CodeIndex("hnsw:16").fit(X).set_search(ef_search=300)
    assert faiss.downcast_index(graph.index_).hnsw.efSearch == 300
    ivf = CodeIndex("ivfpq:8").fit(X)
    lists = faiss.extract_index_ivf(ivf.index_)
    ivf.set_search(nprobe=3)
    assert lists.nprobe == 3
    ivf.set_search(nprobe=10**6)  # more lists than exist: all of them, an exhaustive scan
    assert lists.nprobe == lists.nlist
    exhaustive = ivf.search(X[:20], 5)[1]
    assert (y[exhaustive] == y[:20, None]).mean() > 0.9
    with pytest.raises(ConfigError, match="nprobe applies to ivfpq"):
        graph.set_search(nprobe=4)
    with pytest.raises(ConfigError, match="ef_search applies to graph"):
        CodeIndex("float").fit(X).set_search(ef_search=64)
    with pytest.raises(ConfigError, match="at least 1"):
        graph.set_search(ef_search=0)


def test_search_breadth_from_the_cli(image_dir, tmp_path, cache_dir, capsys):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.build_index(ws, codes="hnsw:8")
    wide = api.search(ws, ids=[1], k=3, ef_search=64)[0]["results"]
    assert [h["id"] for h in wide] == [h["id"] for h in api.search(ws, ids=[1], k=3)[0]["results"]]
    assert main(["search", "-w", str(ws), "--id", "1", "--ef-search", "200", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["results"]) == 10
    assert main(["search", "-w", str(ws), "--id", "1", "--nprobe", "4"]) != 0
    err = capsys.readouterr().err
    assert "nprobe applies to ivfpq" in err and "Traceback" not in err


def test_quantisers_train_on_a_seeded_sample_of_a_large_collection(clustered, monkeypatch):
    """Above TRAIN_SAMPLE vectors an IVF index trains on a seeded sample (the other families
    on everything); every vector is still indexed, and the same seed gives the same index."""
    from imgatlas.index import _faiss_util
    from imgatlas.index.families import _faiss

    X, y = clustered
    seen = []
    real = _faiss_util.training_sample
    monkeypatch.setattr(_faiss_util, "TRAIN_SAMPLE", 200)
    monkeypatch.setattr(_faiss, "training_sample",
                        lambda X, seed: seen.append(len(r := real(X, seed))) or r)
    a = CodeIndex("ivfpq:8").fit(X)
    assert seen == [200] and a.index_.ntotal == len(X)
    top = a.search(X[:40], 10)[1]
    assert (y[top] == y[:40, None]).mean() > 0.9
    np.testing.assert_array_equal(CodeIndex("ivfpq:8").fit(X).search(X[:40], 10)[1], top)
    CodeIndex("hnswpq:8").fit(X)
    assert seen == [200, 200]  # the second ivfpq fit; hnswpq trained on all 300


def test_a_damaged_pickled_index_file_is_a_one_line_workspace_error():
    from imgatlas.errors import WorkspaceError
    from imgatlas.index._faiss_util import from_pickle

    for junk in (b"", b"garbage", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K"):
        with pytest.raises(WorkspaceError, match="umap.pkl is damaged"):
            from_pickle(junk, "umap.pkl")
