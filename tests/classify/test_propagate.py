"""Few labels -> the collection: spreading, self-training, and what to label next."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_moons

from conftest import colour_groups
from imgatlas import api
from imgatlas.classify._choose import estimate_accuracy, label_curve
from imgatlas.classify._propagate import head_labels, propagate, spread
from imgatlas.classify._suggest import suggest
from imgatlas.cli import main
from imgatlas.store import Workspace


def test_spreading_follows_the_manifold_a_line_cannot():
    X, y = make_moons(400, noise=0.05, random_state=0)
    X = np.hstack([X, np.ones((400, 1))]).astype(np.float32)  # cosine needs an offset
    seeds = np.array([np.flatnonzero(y == 0)[0], np.flatnonzero(y == 1)[0]])
    lab, conf = spread(X, seeds, y[seeds], 2, n_neighbors=8, alpha=0.99, iterations=200)
    head, _ = head_labels(X, seeds, y[seeds], 2)
    assert (lab == y).mean() > 0.95 > (head == y).mean()
    assert conf.min() >= 0.5 and lab[seeds].tolist() == y[seeds].tolist()


def test_propagate_and_the_curve_on_separable_groups():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 16))
    y = np.repeat(np.arange(4), 50)
    X = (centres[y] + 0.3 * rng.normal(0, 1, (200, 16))).astype(np.float32)
    seeds = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    lab, _ = propagate(X, seeds, y[seeds], 4)
    assert (lab == y).mean() > 0.95
    curve = label_curve(X, y, 4, per_class=(1, 5, 60), repeats=2)
    assert [c["labels_per_class"] for c in curve] == [1, 5]  # 60 >= the class size: skipped
    assert all(c["self-training"] > 0.9 and {"clusters", "spreading", "head"} <= set(c)
               for c in curve)


def test_suggest_covers_then_asks_where_the_model_hesitates():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (5, 16)) * 3
    y = np.repeat(np.arange(5), 40)
    X = (centres[y] + rng.normal(0, 1, (200, 16))).astype(np.float32)
    first = suggest(X, np.array([], int), np.array([]), 5)
    assert len(first) == 5 and len({y[p["row"]] for p in first}) == 5  # one per group
    labelled = np.array([p["row"] for p in first])
    # with 1 label a class: still typical images, of groups that hold no label yet
    more = suggest(X, labelled, y[labelled], 10)
    assert len(more) == 10 and not set(p["row"] for p in more) & set(labelled.tolist())
    assert all(p["margin"] is None for p in more)
    # from 5 labels a class on: where the model hesitates
    labelled = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(5)])
    nxt = suggest(X, labelled, y[labelled], 8)
    assert len(nxt) == 8 and not set(p["row"] for p in nxt) & set(labelled.tolist())
    assert all(p["margin"] is not None for p in nxt)


@pytest.fixture()
def ws(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", {"red": (220, 30, 30), "green": (30, 200, 40),
                                            "blue": (30, 40, 220)}, 10)
    path = tmp_path / "ws"
    api.scan(root, path, labels_from_folders=True)
    api.embed(path, backbone="test_tiny", cache_dir=cache_dir)
    return path


def test_cli_label_propagate_and_suggest(ws, tmp_path, capsys):
    with Workspace.open(ws) as w:
        rows = w.images()
    given = [r for r in rows if r.display.endswith("/0.png") or r.display.endswith("/1.png")]
    labels = tmp_path / "few.csv"
    labels.write_text("path,label\n" + "".join(f"{r.display},{r.label}\n" for r in given))
    out = tmp_path / "all.csv"
    assert main(["label-propagate", "-w", str(ws), "--labels", str(labels), "--out",
                 str(out), "--apply", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_given"] == 6 and res["applied"] == 24 and res["curve"][0][
        "labels_per_class"] == 1
    with open(out, newline="", encoding="utf-8") as f:
        spread_rows = list(csv.DictReader(f))
    truth = {r.display: r.label for r in rows}
    assert np.mean([truth[r["path"]] == r["label"] for r in spread_rows]) > 0.9
    with Workspace.open(ws) as w:
        assert len(w.user_labels()) == 24  # the given six are not overwritten
    assert main(["suggest-labels", "-w", str(ws), "--n", "3", "--json"]) == 0
    assert main(["suggest-labels", "-w", str(ws), "--n", "3"]) == 0
    capsys.readouterr()
    sug = api.suggest_labels(ws, n=3, labels=str(labels))
    assert len(sug) == 3 and not {s["path"] for s in sug} & {r.display for r in given}


def test_the_collection_estimate_rises_as_labels_arrive():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (4, 16)) * 2
    y = np.repeat(np.arange(4), 60)
    X = (centres[y] + rng.normal(0, 1.2, (240, 16))).astype(np.float32)
    assert estimate_accuracy(X, np.array([0, 60]), y[[0, 60]]) is None  # one of each
    few = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(4)])
    many = np.concatenate([np.flatnonzero(y == c)[:15] for c in range(4)])
    e_few, e_many = estimate_accuracy(X, few, y[few]), estimate_accuracy(X, many, y[many])
    assert e_few["labels"] == 8 and e_many["labels"] == 60
    assert e_many["accuracy"] >= e_few["accuracy"] and e_many["accuracy"] > 0.8


def test_the_label_page_estimate(ws, cache_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from imgatlas.serve import create_app

    c = TestClient(create_app(ws, allow_edits=True, cache_dir=cache_dir))
    c.get("/label")
    assert c.get("/api/labels/estimate").json() == {"estimate": None, "labels": 0}
    with Workspace.open(ws) as w:
        rows = w.images()
    by_label: dict[str, list[int]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r.id)
    token = {"X-CSRF-Token": c.cookies.get("imgatlas_csrf")}
    for label, ids in by_label.items():
        assert c.post("/api/labels", json={"ids": ids[:3], "label": label},
                      headers=token).status_code == 200
    out = c.get("/api/labels/estimate").json()
    assert out["labels"] == 9 and out["estimate"]["accuracy"] > 0.8


def _label_csv(tmp_path, rows, name="few.csv"):
    path = tmp_path / name
    path.write_text("path,label\n" + "".join(f"{r.display},{r.label}\n" for r in rows))
    return path


def test_label_propagate_records_its_choice_and_estimate(ws, tmp_path):
    with Workspace.open(ws) as w:
        rows = w.images()
    few = _label_csv(tmp_path, [r for r in rows if r.display.endswith(("/0.png", "/1.png",
                                                                        "/2.png"))])
    res = api.label_propagate(ws, labels=str(few))
    assert res["method"] in {"clusters", "spreading", "head", "self-training"}
    assert set(res["estimates"]) == {"clusters", "spreading", "head", "self-training"}
    assert res["estimate"] == res["estimates"][res["method"]]
    with Workspace.open(ws) as w:
        run = w.get_run(res["run_id"], "label-propagate")
    assert run["results"]["method"] == res["method"] and run["params"]["method"] == "auto"
    forced = api.label_propagate(ws, labels=str(few), method="clusters")
    assert forced["method"] == "clusters" and forced["choice"] == "as asked"


def test_label_propagate_refuses_one_class_and_unknown_images(ws, tmp_path, capsys):
    with Workspace.open(ws) as w:
        rows = w.images()
    one = _label_csv(tmp_path, [r for r in rows if r.label == "red"][:3])
    code = main(["label-propagate", "-w", str(ws), "--labels", str(one)])
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 classes" in err and len(err.strip().splitlines()) == 1
    outside = tmp_path / "outside.csv"
    outside.write_text("path,label\nnot/in/the/workspace.png,red\n")
    code = main(["label-propagate", "-w", str(ws), "--labels", str(outside)])
    err = capsys.readouterr().err
    assert code == 2 and "does not hold" in err and len(err.strip().splitlines()) == 1


def test_a_failed_write_leaves_no_file_and_no_labels(ws, tmp_path, capsys):
    with Workspace.open(ws) as w:
        rows = w.images()
    few = _label_csv(tmp_path, [r for r in rows if r.display.endswith(("/0.png", "/1.png"))])
    out = tmp_path / "no-such-folder" / "all.csv"
    code = main(["label-propagate", "-w", str(ws), "--labels", str(few), "--out", str(out),
                 "--apply"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.parent.exists()
    with Workspace.open(ws) as w:
        assert w.user_labels() == {}


def test_labels_on_images_gone_since_are_left_out_with_a_note(ws, tmp_path):
    with Workspace.open(ws) as w:
        rows = w.images()
    given = [r for r in rows if r.display.endswith(("/0.png", "/1.png"))]
    api.set_labels(ws, {r.id: r.label for r in given})
    gone = given[0]
    import os

    os.remove(gone.path)
    with Workspace.open(ws) as w:
        root = w.images()[0].root
    api.scan(os.fsdecode(root), ws)
    res = api.label_propagate(ws)
    assert res["n_given"] == len(given) - 1
    assert any("no longer usable" in n for n in res["notes"])


def test_a_budget_larger_than_the_collection_is_cut_with_a_warning(ws, capsys):
    assert main(["suggest-labels", "-w", str(ws), "--n", "500"]) == 0
    out, err = capsys.readouterr()
    assert "only 30 images are without a label" in err
    assert len(out.strip().splitlines()) == 30


def test_suggest_passes_over_avoided_images():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 4
    y = np.repeat(np.arange(3), 30)
    X = (centres[y] + rng.normal(0, 1, (90, 16))).astype(np.float32)
    first = [p["row"] for p in suggest(X, np.array([], int), np.array([]), 3)]
    again = [p["row"] for p in suggest(X, np.array([], int), np.array([]), 3,
                                       avoid=np.array(first))]
    assert not set(first) & set(again) and {y[r] for r in again} == {0, 1, 2}


def test_the_estimate_reuses_the_collections_space(ws, tmp_path, monkeypatch):
    from imgatlas.classify import _label_stage, estimate_workspace

    with Workspace.open(ws) as w:
        rows = w.images()
    api.set_labels(ws, {r.id: r.label for r in rows
                        if r.display.endswith(("/0.png", "/1.png", "/2.png"))})
    made = []
    real = _label_stage.LabelSpace

    def counting(*a, **k):
        made.append(1)
        return real(*a, **k)

    monkeypatch.setattr(_label_stage, "LabelSpace", counting)
    spaces: dict = {}
    with Workspace.open(ws) as w:
        first = estimate_workspace(w, spaces=spaces)
        again = estimate_workspace(w, spaces=spaces)
    assert first == again and len(made) == 1 and len(spaces) == 1


def test_two_backbones_side_by_side_and_clusters_on_the_first(ws, tmp_path, cache_dir,
                                                               monkeypatch):
    from imgatlas import defaults
    from imgatlas.classify import _label_stage

    api.embed(ws, backbone="raw_pixels_32", cache_dir=cache_dir, make_default=False)
    with Workspace.open(ws) as w:
        rows = w.images()
        dims = {s.backbone: s.dim for s in w.feature_stores()}
        key, ids, X, Xc = _label_stage._read(w, "test_tiny,raw_pixels_32")
        assert X.shape[1] == dims["test_tiny"] + dims["raw_pixels_32"]
        assert Xc.shape == (len(ids), dims["test_tiny"]) and "+" in key
        # by default: the default store alone, unless it is the default backbone's and the
        # second backbone's store is there
        assert _label_stage._read(w, None)[3] is None
        monkeypatch.setattr(defaults, "BACKBONE", "test_tiny")
        monkeypatch.setattr(defaults, "SECOND_BACKBONE", "raw_pixels_32")
        assert _label_stage._read(w, None)[0] == key
    few = _label_csv(tmp_path, [r for r in rows if r.display.endswith(("/0.png", "/1.png"))])
    res = api.label_propagate(ws, labels=str(few), features="test_tiny,raw_pixels_32")
    assert res["n_images"] == 30 and res["method"] in res["estimates"]
