"""The workspace's named methods and its one run bracket (``Workspace.recording``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from imgatlas import api
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.reduce import L2Normalizer, PCAReducer
from imgatlas.store import Workspace


@pytest.fixture()
def ws(image_dir, tmp_path, cache_dir):
    path = tmp_path / "ws"
    api.scan(image_dir, path, labels_from_folders=True)
    api.embed(path, backbone="test_tiny", cache_dir=cache_dir)
    return path


def test_a_run_records_parameters_estimators_seed_inputs_and_results(ws):
    with Workspace.open(ws, write=True) as w:
        with w.recording("demo", {"x": 1}, seed=7, inputs="abc") as run:
            run.estimator("reduce", make_pipeline(L2Normalizer(), PCAReducer(3)))
            run.results = {"score": np.float32(0.5)}
        r = w.get_run(run.id, "demo")
    assert r["status"] == "done" and r["error"] is None
    assert r["params"]["x"] == 1 and r["params"]["seed"] == 7 and r["params"]["inputs"] == "abc"
    est = r["params"]["estimators"]["reduce"]
    assert est["class"] == "Pipeline" and est["pcareducer__n_components"] == 3
    assert r["results"] == {"score": 0.5} and r["version"]


def test_a_failed_run_keeps_its_reason_and_nothing_half_written(ws):
    with Workspace.open(ws, write=True) as w:
        ids = np.array([r.id for r in w.images()])
        with pytest.raises(ConfigError), w.recording("cluster", {}) as run:
            w.record_assignments(run.id, ids, np.zeros(len(ids), int),
                                 np.full(len(ids), np.nan), np.zeros(len(ids)))
            raise ConfigError("The 'k' parameter must be an int >= 2. Got 0 instead.")
        r = w.get_run(run.id, "cluster")
        assert r["status"] == "failed" and r["error"].startswith("The 'k' parameter")
        assert len(w.assignments(run.id)[0]) == 0  # the half-written rows are gone
        with pytest.raises(KeyboardInterrupt), w.recording("embed", {}) as run2:
            raise KeyboardInterrupt
        assert w.get_run(run2.id, "embed")["status"] == "interrupted"
        with pytest.raises(ZeroDivisionError), w.recording("index", {}) as run3:
            1 / 0  # noqa: B018 - a bug: recorded with its type
        assert w.get_run(run3.id, "index")["error"] == "ZeroDivisionError: division by zero"
        # the latest *finished* run is what readers get
        with pytest.raises(ConfigError, match="no finished cluster run"):
            w.get_run(None, "cluster")


def test_a_killed_run_is_marked_interrupted_on_the_next_write(ws):
    with Workspace.open(ws, write=True) as w:
        cm = w.recording("embed", {})
        run = cm.__enter__()  # never exited: the process "dies" here
    with Workspace.open(ws, write=True) as w:
        r = w.get_run(run.id, "embed")
    assert r["status"] == "interrupted" and "stopped before" in r["error"]


def test_an_index_build_that_fails_is_recorded(ws, monkeypatch):
    from imgatlas.index import _codes

    def boom(self, X, y=None):
        raise MemoryError("out of memory")

    monkeypatch.setattr(_codes.CodeIndex, "fit", boom)
    with pytest.raises(MemoryError):
        api.build_index(ws, codes="float")
    (r,) = api.runs(ws, "index")
    assert r["status"] == "failed" and "MemoryError" in r["error"]


def test_named_methods_images_clusters_names_labels(ws):
    api.cluster(ws, k=3, reduce="l2")
    with Workspace.open(ws, write=True) as w:
        rows = w.images()
        assert len(rows) == 12 and all(r.root and r.size for r in rows)
        one = w.image(rows[0].id)
        assert one == rows[0] and w.image(10_000) is None
        assert w.n_labels() == 3 and w.status_counts() == {"ok": 12}
        assert w.ids_with_sha256(one.sha256) == [one.id]
        info = w.display_and_label()
        assert info[one.id] == (one.display, one.label)
        run = w.get_run(None, "cluster")
        ids, clusters, labels, sil = w.assignments(run["id"])
        assert len(ids) == 12 and set(clusters) <= {0, 1, 2} and not np.isnan(sil).all()
        sizes = w.cluster_sizes(run["id"])
        assert sum(sizes.values()) == 12
        c0 = int(clusters[0])
        assert ids[0] in w.cluster_members(run["id"], [c0])
        assert w.image_clusters(int(ids[0])) == {run["id"]: c0}
        w.name_cluster(run["id"], c0, "<b>cats</b>")
        assert w.cluster_names(run["id"]) == {c0: "<b>cats</b>"}
        table = w.cluster_table(run["id"])
        assert {r[4] for r in table if r[3] == c0} == {"<b>cats</b>"}
        w.name_cluster(run["id"], c0, "")  # an empty name removes it
        assert w.cluster_names(run["id"]) == {}
        with pytest.raises(ConfigError, match="no cluster 99"):
            w.name_cluster(run["id"], 99, "x")
        assert len(w.centre_distances(run["id"])) == 12
        w.set_user_labels([(rows[0].id, "tabby"), (rows[1].id, "tabby")], "test")
        assert w.user_labels() == {rows[0].id: "tabby", rows[1].id: "tabby"}
        w.set_user_labels([(rows[0].id, None)], "test")
        assert w.user_labels() == {rows[1].id: "tabby"}


def test_feature_store_lookup_and_its_errors(ws, tmp_path):
    with Workspace.open(ws) as w:
        store = w.pick_store()
        assert w.pick_store("test_tiny").key == store.key == w.feature_store(store.key).key
        assert store.n_usable() == 12
        with pytest.raises(ConfigError, match="No feature store 'nope'"):
            w.pick_store("nope")
        with pytest.raises(WorkspaceError, match="no longer in the workspace"):
            w.run_store({"id": 3, "params": {"features": "gone"}})
    api.scan(ws.parent / "images", tmp_path / "empty")
    with Workspace.open(tmp_path / "empty") as w, pytest.raises(WorkspaceError,
                                                                 match="no features yet"):
        w.pick_store()


def test_reuse_finds_an_identical_finished_run_only(ws):
    a = api.cluster(ws, k=3, reduce="l2", reuse=True)
    b = api.cluster(ws, k=3, reduce="l2", reuse=True)
    c = api.cluster(ws, k=3, reduce="l2", seed=1, reuse=True)
    assert b["reused"] and b["run_id"] == a["run_id"]
    assert not c.get("reused") and c["run_id"] != a["run_id"]
