"""Corrections: each a derived run recorded with what changed; undo restores the run it
edited exactly; everything survives reopening the workspace."""

from __future__ import annotations

import shutil

import pytest

from conftest import colour_groups
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 40)}


@pytest.fixture(scope="module")
def base(tmp_path_factory, cache_dir):
    root = colour_groups(tmp_path_factory.mktemp("edit") / "img", COLOURS, 8)
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    run = api.cluster(ws, k=4)
    return ws, run["run_id"]


@pytest.fixture()
def ws(base, tmp_path):
    src, run = base
    dst = tmp_path / "ws"
    shutil.copytree(src, dst)
    return dst, run


def assignments(ws, run):
    with Workspace.open(ws) as w:
        ids, labels, _, _ = w.assignments(run)
    return dict(zip(ids.tolist(), labels.tolist(), strict=True))


def test_move_to_another_cluster_and_to_a_new_one(ws):
    ws, run = ws
    before = assignments(ws, run)
    a, b = sorted(before)[:2]
    target = next(c for c in set(before.values()) if c != before[a])
    res = api.move(ws, [a], target)
    after = assignments(ws, res["run_id"])
    assert after[a] == target and after[b] == before[b]
    assert sum(after[i] != before[i] for i in before) == 1
    assert res["derived_from"] == run and res["edit"] == {"op": "move", "images": [a],
                                                          "to": target}
    new = api.move(ws, [a, b], "new")
    newest = assignments(ws, new["run_id"])
    assert newest[a] == newest[b] == max(before.values()) + 1
    assert api.runs(ws, "cluster")[-1]["params"]["derived_from"] == res["run_id"]
    with pytest.raises(ConfigError, match="is not in run"):
        api.move(ws, [99999], "new")
    with pytest.raises(ConfigError, match="has no cluster 77"):
        api.move(ws, [a], 77)


def test_merge_split_set_aside_keep_names(ws):
    ws, run = ws
    api.name_cluster(ws, run, 0, "first")
    sizes = api.runs(ws, "cluster")[-1]["results"]["sizes"]
    merged = api.merge(ws, [0, 1])
    assert merged["sizes"][0] == sizes["0"] + sizes["1"] and 1 not in merged["sizes"]
    names = {r["cluster"]: r["name"] for r in api.clusters(ws, merged["run_id"])}
    assert names[0] == "first"
    split = api.split(ws, 0, k=2)
    assert split["n_clusters"] == merged["n_clusters"] + 1
    assert sorted(split["edit"]["into"])[0] == 0
    members = [i for i, c in assignments(ws, split["run_id"]).items() if c >= 0][:3]
    aside = api.set_aside(ws, members)
    got = assignments(ws, aside["run_id"])
    assert all(got[i] == -1 for i in members)
    with pytest.raises(ConfigError, match="at least two clusters"):
        api.merge(ws, [0])
    with pytest.raises(ConfigError, match="split it in 2 to"):
        api.split(ws, 0, k=500)


def test_undo_restores_the_previous_run_exactly_and_survives_a_restart(ws):
    ws, run = ws
    before = assignments(ws, run)
    edited = api.merge(ws, [0, 1])
    again = api.move(ws, [sorted(before)[0]], "new")
    out = api.undo(ws)
    assert out == {"undone": again["run_id"], "run_id": edited["run_id"], "status": "done",
                   "edit": again["edit"]}
    out = api.undo(ws)
    assert out["run_id"] == run
    # reopened from disk: the latest run is the original, assignment for assignment
    with Workspace.open(ws) as w:
        latest = w.get_run(None, "cluster")
    assert latest["id"] == run and assignments(ws, run) == before
    assert api.runs(ws, "cluster")[-1]["status"] == "undone"
    with pytest.raises(ConfigError, match="nothing to undo"):
        api.undo(ws)
    # reports and exports follow the latest run, or the one given
    rep = api.report(ws)
    assert rep["run_id"] == run


def test_fewer_or_more_groups_without_clustering_again(ws):
    ws, run = ws
    fewer = api.cluster(ws, from_run=run, k=2)
    assert fewer["n_clusters"] == 2 and fewer["edit"]["op"] == "regroup"
    groups = assignments(ws, fewer["run_id"])
    parent = assignments(ws, run)
    # the tree joins whole clusters: images of one cluster stay together
    for c in set(parent.values()):
        assert len({groups[i] for i, p in parent.items() if p == c}) == 1
    more = api.cluster(ws, from_run=run, k=6)
    assert more["n_clusters"] == 6
    tree = api.runs(ws, "cluster")[0]["results"]["tree"]
    assert sorted(tree["clusters"]) == [0, 1, 2, 3] and len(tree["merges"]) == 3


def test_the_cli_faces(ws, capsys):
    ws, run = ws
    w = str(ws)
    assert main(["merge", "--workspace", w, "0", "1"]) == 0
    assert "derived from run" in capsys.readouterr().out
    assert main(["split", "--workspace", w, "0"]) == 0
    assert main(["move", "--workspace", w, "--to", "new", "1", "2"]) == 0
    assert main(["set-aside", "--workspace", w, "3"]) == 0
    assert main(["cluster", "--workspace", w, "--from-run", str(run), "--k", "3"]) == 0
    capsys.readouterr()
    assert main(["undo", "--workspace", w]) == 0
    assert "is the latest again" in capsys.readouterr().out
    assert main(["move", "--workspace", w, "--to", "nowhere", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cluster id or 'new'" in err
    assert main(["merge", "--workspace", w, "0", "999"]) == 2


def test_run_keeps_a_persons_corrections(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", COLOURS, 6)
    ws = tmp_path / "ws"
    first = api.run(root, ws, backbone="test_tiny", k=4, make_report=False,
                    cache_dir=cache_dir)
    edited = api.merge(ws, [0, 1])
    again = api.run(root, ws, backbone="test_tiny", k=4, make_report=False,
                    cache_dir=cache_dir)
    assert again["cluster"]["reused"] and again["cluster"]["run_id"] == edited["run_id"]
    assert first["cluster"]["run_id"] != edited["run_id"]
