"""A second run over a collection that grew a little keeps its clusters: the new images join
their nearest neighbours' clusters (a derived run), names and map carry over; more growth,
or --refit, clusters everything again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import colour_groups
from imgatlas import api, defaults
from imgatlas.store import Workspace

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def add_images(folder, rgb, n, start):
    rng = np.random.default_rng(start)
    for j in range(n):
        a = np.clip(np.array(rgb) + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"new{start + j}.png")


@pytest.fixture()
def first(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", COLOURS, 10)
    ws = tmp_path / "ws"
    res = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                  labels_from_folders=True, make_inspection=False)
    return root, ws, res


def test_a_few_new_images_join_their_neighbours_clusters(first, cache_dir):
    root, ws, res = first
    run0 = res["cluster"]["run_id"]
    red_cluster = _cluster_of(ws, run0, "red")
    api.name_cluster(ws, run0, red_cluster, "reds")
    add_images(root / "red", COLOURS["red"], 3, 100)  # 3 of 30: at the share
    assert defaults.REFIT_GROWTH * 30 >= 3
    again = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                    labels_from_folders=True, make_inspection=False)
    c = again["cluster"]
    assert c["derived_from"] == run0 and c["edit"]["op"] == "grow"
    assert c["edit"]["added"] == 3 and c["n_images"] == 33
    with Workspace.open(ws) as w:
        ids, clusters, _, _ = w.assignments(c["run_id"])
        paths = {r.id: r.display for r in w.images()}
        new = [i for i in ids if paths[int(i)].rsplit("/", 1)[-1].startswith("new")]
        assert len(new) == 3
        assert set(clusters[np.isin(ids, new)].tolist()) == {red_cluster}
        assert w.cluster_names(c["run_id"]).get(red_cluster) == "reds"
        parent_map = np.load(ws / "maps" / f"run-{run0}-umap.npy")
        grown_map = np.load(ws / "maps" / f"run-{c['run_id']}-umap.npy")
        old_ids = w.assignments(run0)[0]
    kept = np.isin(ids, old_ids)
    assert np.allclose(grown_map[kept], parent_map)  # the map does not move
    third = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                    labels_from_folders=True, make_inspection=False, make_report=False)
    assert third["cluster"]["run_id"] == c["run_id"] and third["cluster"]["reused"]


def test_more_growth_or_refit_clusters_again(first, cache_dir):
    root, ws, res = first
    add_images(root / "blue", COLOURS["blue"], 4, 200)  # 4 of 30: above the share
    again = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                    make_inspection=False, make_report=False)
    assert again["cluster"].get("derived_from") is None
    assert again["cluster"]["n_images"] == 34
    add_images(root / "green", COLOURS["green"], 1, 300)
    forced = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir, refit=True,
                     make_inspection=False, make_report=False)
    assert forced["cluster"].get("derived_from") is None and forced["cluster"]["n_images"] == 35


def _cluster_of(ws, run, folder):
    with Workspace.open(ws) as w:
        ids, clusters, labels, _ = w.assignments(run)
    return int(np.bincount(clusters[np.array(labels) == folder]).argmax())


def test_the_grown_run_reuses_its_parents_kept_space(first, cache_dir, monkeypatch):
    """The reduction is not fitted again: earlier images keep their reduced vectors, new ones
    sit at their neighbours' mean; without a kept space (an older workspace) it is refitted."""
    from imgatlas.reduce import make_reducer
    from imgatlas.report import _layout, clustering_space

    root, ws, res = first
    run0 = res["cluster"]["run_id"]
    with Workspace.open(ws) as w:
        ids0, Z0 = w.space(run0)
        run = w.get_run(run0, "cluster")
        X = clustering_space(w, run, ids0, reduce=False)[0]
    refit = make_reducer(run["params"]["reduce"], random_state=run["params"]["seed"])
    assert np.allclose(Z0, refit.fit_transform(X), atol=1e-5)  # what the run clustered in

    def no_refit(*a, **k):
        raise AssertionError("the reduction was fitted again")

    monkeypatch.setattr(_layout, "make_reducer", no_refit)
    add_images(root / "green", COLOURS["green"], 2, 200)
    c = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                labels_from_folders=True, make_inspection=False, make_report=False)["cluster"]
    assert c["edit"]["op"] == "grow"
    with Workspace.open(ws) as w:
        ids1, Z1 = w.space(c["run_id"])
        grown = w.get_run(c["run_id"], "cluster")
        assert np.array_equal(clustering_space(w, grown, ids1)[1], Z1)
    old = np.isin(ids1, ids0)
    assert old.sum() == len(ids0) and (~old).sum() == 2
    np.testing.assert_array_equal(Z1[old], Z0)
    assert np.isfinite(Z1[~old]).all()

    # an older workspace: no kept spaces, the reduction is fitted again
    monkeypatch.undo()
    for f in (ws / "spaces").iterdir():
        f.unlink()
    add_images(root / "blue", COLOURS["blue"], 1, 300)
    c2 = api.run(root, ws, backbone="test_tiny", k=3, cache_dir=cache_dir,
                 labels_from_folders=True, make_inspection=False, make_report=False)["cluster"]
    assert c2["edit"]["op"] == "grow" and c2["n_images"] == len(ids1) + 1
