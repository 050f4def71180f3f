"""Inspect at scale (inspect/_space.py, _candidates.py, _duplicates.py): the search space of
codes bounds every cosine it does not read, shards (local or Ray) find what one piece finds,
and a rerun compares only the new images."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_stage import planted

from conftest import ROOT
from imgatlas import api
from imgatlas._shards import StoreFile
from imgatlas.inspect._candidates import Collection
from imgatlas.inspect._duplicates import find_pairs
from imgatlas.inspect._pixels import TURNS
from imgatlas.inspect._space import SearchSpace

SAMPLES = sorted((ROOT / "samples" / "clothing").glob("*/*.jpg"))


def _collection(tmp_path, n=3000, d=256, seed=0):
    """Clustered vectors in a store file; rows 100-199 are copies of rows 0-99 (features
    close, hash 2 bits away), row 201 holds row 200's bytes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (20, d))
    X = centres[rng.integers(0, 20, n)] + rng.normal(0, 1.0, (n, d))
    X[100:200] = X[:100] + rng.normal(0, 0.15, (100, d))
    X[201] = X[200]
    path = tmp_path / "vectors.f32"
    X.astype(np.float32).tofile(path)
    bits = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    bits[100:200] = bits[:100]
    bits[100:200, 0] ^= 0b101
    bits[201] = bits[200]
    content = np.arange(n)
    content[201] = 200
    c = Collection(bits=bits, turns=np.zeros((n, len(TURNS), 8), np.uint8), content=content,
                   big=np.ones(n, bool), new=np.ones(n, bool))
    return StoreFile(str(path), "float32", d), np.arange(1, n + 1), X, c.index()


class _Asked:
    """A verifier that records what it is asked and finds nothing."""

    def __init__(self) -> None:
        self.asked: set[tuple[int, int]] = set()

    def __call__(self, ids: np.ndarray) -> _Asked:
        return self

    def match(self, a: int, b: int, mirror: bool, framed: bool) -> None:
        self.asked.add((a, b))


def _pairs(space, c, **kw):
    asked = _Asked()
    found = find_pairs(space, c, np.arange(len(space.ids)), asked, **kw)
    # cosines to 4 places: a search's sums run in another order in another batch size
    return ({(p.a, p.b): (round(p.cosine, 4), p.evidence) for p in found.pairs}, asked.asked,
            found)


def test_codes_bound_every_cosine_and_the_doubtful_ones_are_read_exactly(tmp_path):
    source, ids, X, _ = _collection(tmp_path)
    space = SearchSpace.build(source, ids, exact_up_to=100)
    assert not space.exact and space.W.shape == (64, 256)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    i, j = rng.integers(0, len(ids), 2000), rng.integers(0, len(ids), 2000)
    truth = np.einsum("ij,ij->i", U[i], U[j])
    approx = space.projected(np.einsum("ij,ij->i", space.codes(i), space.codes(j)), i, j)
    slack = space.residual[i] * space.residual[j]
    assert (np.abs(truth - approx) <= slack + 1e-5).all()
    assert slack.mean() > 0.05  # the bound is not trivially tight: the codes lose something
    np.testing.assert_allclose(space.cosines(U[i].astype(np.float32), j), truth, atol=1e-5)


def test_shards_find_what_one_piece_finds(tmp_path):
    source, ids, _, c = _collection(tmp_path)
    for exact_up_to in (10**6, 100):
        space = SearchSpace.build(source, ids, exact_up_to=exact_up_to)
        one, asked_one, f1 = _pairs(space, c, shard_size=len(ids))
        many, asked_many, f2 = _pairs(space, c, shard_size=257)
        assert one == many and asked_one == asked_many
        np.testing.assert_allclose(f1.neighbours, f2.neighbours, atol=1e-5)


def test_codes_find_the_copies_exact_search_finds_with_exact_cosines(tmp_path):
    source, ids, X, c = _collection(tmp_path)
    exact, _, _ = _pairs(SearchSpace.build(source, ids), c)
    coded, _, _ = _pairs(SearchSpace.build(source, ids, exact_up_to=100), c)
    planted = {(k + 1, k + 101) for k in range(100)} | {(201, 202)}
    assert set(exact) == planted
    assert coded == exact  # the same pairs, with the same (exact) cosines and evidence
    assert coded[(201, 202)][1] == "same bytes"


def test_a_picture_stored_many_times_is_one_group_of_few_pairs(tmp_path):
    from imgatlas.inspect._rules import K_FEATURES, K_HASH

    source, ids, _, c = _collection(tmp_path, n=600)
    c.content[300:500] = 300  # 200 copies of one file: 19,900 pairs if all were recorded
    c.__post_init__()
    got, _, _ = _pairs(SearchSpace.build(source, ids), c.index())
    same = [p for p, (_, why) in got.items() if why == "same bytes" and p[0] > 300]
    assert len(same) <= 199 + 200 * (K_FEATURES + K_HASH)  # the star and the searches'
    joined = {301}
    for a, b in sorted(same) * 2:
        if a in joined or b in joined:
            joined |= {a, b}
    assert joined == set(range(301, 501))


def _groups(res):
    return sorted(sorted(os.path.basename(p) for p in [g["keep"], *g["copies"]])
                  for g in res["near_duplicate_groups"])


def test_a_rerun_in_codes_compares_only_the_new_images(tmp_path, cache_dir, monkeypatch):
    import imgatlas.inspect._candidates as cand
    import imgatlas.inspect._space as space

    monkeypatch.setattr(space, "EXACT_UP_TO", 8)
    monkeypatch.setattr(cand, "HASH_EXACT_UP_TO", 8)
    root = tmp_path / "photos"
    root.mkdir()
    for f in SAMPLES[60:100]:
        shutil.copy(f, root / f"other-{f.name}")
    original = Image.open(SAMPLES[30]).convert("RGB")
    original.save(root / "original.jpg", quality=92)
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    first = api.inspect(ws)
    assert first["run"]["n_compared"] == 41
    ImageOps.mirror(original).save(root / "mirrored.jpg", quality=85)
    original.resize((original.width // 2, original.height // 2)).save(root / "half.jpg")
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    again = api.inspect(ws)
    assert again["run"]["n_compared"] == 2
    assert ["half.jpg", "mirrored.jpg", "original.jpg"] in _groups(again)


@pytest.mark.parametrize("codes", [False, True])
def test_inspect_on_ray_finds_what_one_process_finds(ray_cluster, tmp_path_factory, cache_dir,
                                                      monkeypatch, codes):
    import imgatlas.inspect._candidates as cand
    import imgatlas.inspect._space as space

    if codes:  # the search space of codes, on a small collection
        monkeypatch.setattr(space, "EXACT_UP_TO", 5)
        monkeypatch.setattr(cand, "HASH_EXACT_UP_TO", 5)
    root = planted(tmp_path_factory.mktemp("ray") / "photos")
    results = {}
    for engine in ("local", "ray"):
        ws = root.parent / f"ws-{engine}"
        api.scan(root, ws)
        api.embed(ws, cache_dir=cache_dir)
        results[engine] = api.inspect(ws, engine=engine, shard_size=4)
    assert results["ray"]["run"]["engine"] == "ray"
    assert _groups(results["ray"]) == _groups(results["local"])
    assert len(_groups(results["local"])) >= 6
    flags = {e: sorted((os.path.basename(f["path"]), f["flag"]) for f in r["flags"])
             for e, r in results.items()}
    assert flags["ray"] == flags["local"]


def test_images_the_codes_describe_poorly_find_their_copies_exactly(tmp_path):
    """A few pictures unlike the many (their vectors mostly outside the directions fitted
    on the sample) are searched exactly among themselves: each finds its copy as its
    nearest, with the exact cosine."""
    rng = np.random.default_rng(3)
    n, d = 3000, 256
    X = np.zeros((n + 40, d))
    X[:n, :48] = rng.normal(0, 1, (20, 48))[rng.integers(0, 20, n)] + rng.normal(0, 0.5,
                                                                                  (n, 48))
    X[:n, 48:] = rng.normal(0, 0.05, (n, d - 48))
    X[n:n + 20, 48:] = rng.normal(0, 1, (20, d - 48))
    X[n + 20:, 48:] = X[n:n + 20, 48:] + rng.normal(0, 0.6, (20, d - 48))  # cos ~0.85
    X[n:, :48] = rng.normal(0, 0.3, (40, 48))
    path = tmp_path / "vectors.f32"
    X.astype(np.float32).tofile(path)
    ids = np.arange(1, n + 41)
    space = SearchSpace.build(StoreFile(str(path), "float32", d), ids, exact_up_to=100)
    assert space.atypical_rows is not None
    odd = np.arange(n, n + 40)
    assert np.isin(odd, space.atypical_rows).all() and len(space.atypical_rows) < 200
    U = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    X_odd, codes = space.query(odd)
    sims, nn, exact = space.nearest(odd, X_odd, codes, 3)
    assert exact.all()
    partner = np.r_[odd[20:], odd[:20]]
    assert (nn[:, 1] == partner).all()  # [0] is itself
    np.testing.assert_allclose(sims[:, 1], np.einsum("ij,ij->i", U[odd], U[partner]),
                               atol=1e-5)


def test_fresh_compares_everything_again(tmp_path, cache_dir):
    from imgatlas.cli import main

    root = tmp_path / "photos"
    root.mkdir()
    for f in SAMPLES[:12]:
        shutil.copy(f, root / f.name)
    shutil.copy(SAMPLES[0], root / "again.jpg")
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    assert api.inspect(ws)["run"]["n_compared"] == 13
    assert api.inspect(ws)["run"]["n_compared"] == 0
    assert main(["inspect", "--workspace", str(ws), "--fresh", "--json"]) == 0
    again = api.inspection(ws)
    assert again["counts"]["near_duplicate_groups"] == 1
    from imgatlas.store import Workspace

    with Workspace.open(ws) as w:
        last = [r for r in w.runs("inspect")][-1]
    assert last["results"]["n_compared"] == 13 and last["params"]["fresh"]
