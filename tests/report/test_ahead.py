"""The report's map laid out ahead, while run inspects and clusters."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import colour_groups
from imgatlas import api
from imgatlas.report import _ahead, _layout
from imgatlas.store import Workspace

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture()
def embedded(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", COLOURS, 10, shape=(32, 40), ext="png")
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    return ws


def _ahead_of(ws, seed=0):
    with Workspace.open(ws) as w:
        return _ahead.map_ahead(w, w.pick_store().key, seed, most=1000)


def test_the_map_laid_out_ahead_is_the_reports_own(embedded):
    ahead = _ahead_of(embedded)
    assert ahead is not None and ahead.method == "umap"
    run = api.cluster(embedded, k=3, seed=0)
    with Workspace.open(embedded) as ws:
        r = ws.get_run(run["run_id"], "cluster")
        assert ahead.adopt(ws, r)
        cache = _layout.map_cache(ws, r["id"], "umap")
        adopted = np.load(cache)
        cache.unlink()
        X, _ = _layout.clustering_space(ws, r, ws.assignments(r["id"])[0], reduce=False)
        own, used = _layout.map_coordinates(ws, r, X)
    assert used == "umap" and np.allclose(adopted, own, atol=1e-5)


def test_kept_only_for_a_run_of_the_same_images_and_seed(embedded):
    ahead = _ahead_of(embedded, seed=0)
    other_seed = api.cluster(embedded, k=3, seed=1)
    with Workspace.open(embedded) as ws:
        assert not ahead.adopt(ws, ws.get_run(other_seed["run_id"], "cluster"))
        first = ws.get_run(other_seed["run_id"], "cluster")
    fewer = api.cluster(embedded, k=3, seed=0, exclude=[(first["id"], [0])])
    with Workspace.open(embedded) as ws:
        assert not ahead.adopt(ws, ws.get_run(fewer["run_id"], "cluster"))
        assert not list((ws.path / "maps").glob("*.npy"))
    # a clustering already there: the next run keeps its parent's map, nothing laid out
    assert _ahead_of(embedded) is None


def test_a_failure_in_the_thread_is_dropped(embedded, monkeypatch):
    def broken(*a, **k):
        raise MemoryError("no room")

    monkeypatch.setattr(_ahead, "lay_out", broken)
    ahead = _ahead_of(embedded)
    run = api.cluster(embedded, k=3, seed=0)
    with Workspace.open(embedded) as ws:
        assert not ahead.adopt(ws, ws.get_run(run["run_id"], "cluster"))
    rep = api.report(embedded, embedded.parent / "rep")  # lays the map out itself
    assert rep["map"] == "umap"


def test_run_lays_the_map_out_ahead_only_the_first_time(tmp_path, cache_dir, monkeypatch):
    kept = []
    real = _ahead.MapAhead.adopt
    monkeypatch.setattr(_ahead.MapAhead, "adopt",
                        lambda self, ws, run: kept.append(real(self, ws, run)) or kept[-1])
    root = colour_groups(tmp_path / "img", COLOURS, 8, shape=(32, 40), ext="png")
    first = api.run(root, tmp_path / "ws", backbone="test_tiny", k=3, cache_dir=cache_dir)
    assert kept == [True] and first["report"]["map"] == "umap"
    again = api.run(root, tmp_path / "ws", backbone="test_tiny", k=3, cache_dir=cache_dir)
    assert kept == [True] and again["cluster"]["reused"]
    api.run(root, tmp_path / "ws", backbone="test_tiny", k=3, cache_dir=cache_dir,
            make_report=False, refit=True, seed=4)
    assert kept == [True]
