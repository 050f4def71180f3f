"""The studies' split protocol and where labels come from."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import colour_groups
from imgatlas import api
from imgatlas.classify._labels import resolve_labels
from imgatlas.classify._split import holdout_split, kfold_splits
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace


def test_holdout_is_stratified_seeded_and_disjoint():
    labels = ["a"] * 100 + ["b"] * 50 + ["c"] * 10
    s = holdout_split(labels, seed=3)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sum(map(len, parts)) == 160 and not (parts[0] & parts[1] or parts[0] & parts[2])
    y = np.array(labels)
    assert Counter(y[s.test]) == {"a": 30, "b": 15, "c": 3}  # 30 % of each class
    assert abs(len(s.val) - 0.2 * (len(s.train) + len(s.val))) <= 1
    again = holdout_split(labels, seed=3)
    assert np.array_equal(again.test, s.test)
    assert not np.array_equal(holdout_split(labels, seed=4).test, s.test)


def test_tiny_and_single_classes_are_clear():
    with pytest.raises(ConfigError, match="Class 'z' has 1 image"):
        holdout_split(["a"] * 5 + ["z"])
    with pytest.raises(ConfigError, match="at least 2 classes"):
        holdout_split(["a"] * 5)
    s = holdout_split(["a", "a", "b", "b", "c", "c"])  # 2 per class: one train, one test
    assert len(s.test) == 3 and len(s.train) + len(s.val) == 3


def test_kfold_covers_every_image_once():
    labels = ["a"] * 20 + ["b"] * 10
    folds = kfold_splits(labels, 5, seed=0)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(30))
    with pytest.raises(ConfigError, match="at least 5"):
        kfold_splits(["a"] * 20 + ["b"] * 3, 5)


@pytest.fixture()
def ws(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", {"red": (220, 30, 30), "blue": (30, 40, 220)}, 6)
    path = tmp_path / "ws"
    api.scan(root, path, labels_from_folders=True)
    api.embed(path, backbone="test_tiny", cache_dir=cache_dir)
    return path, root


def test_labels_from_folders_runs_csv_and_user(ws, tmp_path):
    path, root = ws
    run = api.cluster(path, k=2)
    with Workspace.open(path, write=True) as w:
        assert Counter(resolve_labels(w, "folders").labels) == {"red": 6, "blue": 6}
        with pytest.raises(ConfigError, match="no named cluster.*clusters --run .* --accept"):
            resolve_labels(w, f"run:{run['run_id']}")
        w.name_cluster(run["run_id"], 0, "warm")
        lab = resolve_labels(w, f"run:{run['run_id']}")
        assert set(lab.labels) == {"warm"} and "left out 1 unnamed cluster" in lab.notes[0]
        rows = w.images()
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\n" + f"{rows[0].display},x\n"
                   + f"red/{rows[1].display.rsplit('/', 1)[1]},y\n")
    with Workspace.open(path) as w:
        lab = resolve_labels(w, str(csv))
    assert sorted(lab.labels) == ["x", "y"]
    (tmp_path / "s.csv").write_text(f"sha256,label\n{rows[2].sha256},z\n")
    with Workspace.open(path) as w:
        assert resolve_labels(w, str(tmp_path / "s.csv")).ids == [rows[2].id]
    (tmp_path / "bad.csv").write_text("path,label\n/nowhere/cat.jpg,cat\n")
    with Workspace.open(path) as w, pytest.raises(ConfigError, match="line 2: /nowhere/cat"):
        resolve_labels(w, str(tmp_path / "bad.csv"))
    with Workspace.open(path) as w, pytest.raises(ConfigError, match="none of them"):
        resolve_labels(w, "nonsense")
    api.set_labels(path, {rows[0].id: "mine"})
    with Workspace.open(path) as w:
        assert resolve_labels(w, "user").labels == ["mine"]
