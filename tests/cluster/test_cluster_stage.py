from __future__ import annotations

import importlib.util
import json

import pyarrow.parquet as pq
import pytest

from conftest import colour_groups
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture()
def coloured_ws(tmp_path, cache_dir):
    """Three obvious groups (by colour), embedded with the tiny test backbone."""
    root = colour_groups(tmp_path / "img", COLOURS, 10)
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    return ws


def test_cluster_evaluate_export(coloured_ws, tmp_path):
    res = api.cluster(coloured_ws, method="kmeans", k=3)
    assert res["n_clusters"] == 3 and sum(res["sizes"].values()) == 30
    assert res["internal"]["silhouette"] > 0.5
    ev = api.evaluate(coloured_ws)
    assert ev["acc"] == 1.0 and ev["nmi"] == pytest.approx(1.0)
    assert set(ev["composition"]) == {"0", "1", "2"}
    api.name_cluster(coloured_ws, res["run_id"], 0, "first group")
    out = api.export_clusters(coloured_ws, tmp_path / "c.parquet")
    t = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert out["rows"] == 30 and {r["cluster"] for r in t} == {0, 1, 2}
    assert {r["cluster_name"] for r in t if r["cluster"] == 0} == {"first group"}
    runs = api.runs(coloured_ws, "cluster")
    assert runs[-1]["results"]["evaluation"]["acc"] == 1.0
    assert runs[-1]["params"]["seed"] == 0 and runs[-1]["version"]


def test_k_auto_finds_three(coloured_ws):
    res = api.cluster(coloured_ws, k="auto", k_range=(2, 6))
    assert res["k"] == 3 and "k=" in res["k_selection"]["reason"]


@pytest.mark.parametrize("method,options,k", [
    ("gmm", {"covariance_type": "diag"}, 3),
    ("agglomerative", {"linkage": "average", "metric": "cosine"}, 3),
    ("kmedoids", {}, 3),
    ("dbscan", {"min_samples": 4}, None),
    ("hdbscan", {"min_cluster_size": 5}, None),
    pytest.param("scan", {"epochs": 30}, 3, marks=pytest.mark.skipif(
        importlib.util.find_spec("torch") is None, reason="optional 'torch' not installed")),
])
def test_every_method_through_the_workspace(coloured_ws, method, options, k):
    res = api.cluster(coloured_ws, method=method, k=k, options=options, reduce="l2")
    ev = api.evaluate(coloured_ws, res["run_id"])
    if method in ("dbscan", "hdbscan"):  # noise points count as errors in ACC
        assert ev["acc"] > 0.75 and ev["purity"] > 0.75, (method, ev)
        assert res["internal"]["noise_share"] < 0.25
    else:
        assert ev["acc"] > 0.9, (method, ev)
    if method == "agglomerative":
        assert res["internal"]["cophenetic_correlation"] > 0.5


def test_within_and_exclude(coloured_ws):
    first = api.cluster(coloured_ws, k=3)
    sizes = first["sizes"]
    sub = api.cluster(coloured_ws, k=2, within=(first["run_id"], 0))
    assert sub["n_images"] == sizes[0]
    rest = api.cluster(coloured_ws, k=2, exclude=[(first["run_id"], [0])])
    assert rest["n_images"] == 30 - sizes[0]
    with pytest.raises(ConfigError, match="no cluster 9"):
        api.cluster(coloured_ws, k=2, within=(first["run_id"], 9))
    both = api.cluster(coloured_ws, k=2, within=(first["run_id"], [0, 1]))
    assert both["n_images"] == sizes[0] + sizes[1]  # every cluster named, not the first


def test_cli_within_takes_several_clusters(coloured_ws, capsys):
    first = api.cluster(coloured_ws, k=3)
    ws = str(coloured_ws)
    assert main(["cluster", "-w", ws, "--k", "2", "--within", f"{first['run_id']}:0,2",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_images"] == first["sizes"][0] + first["sizes"][2]


def test_pca_and_chained_reduction(coloured_ws):
    res = api.cluster(coloured_ws, k=3, reduce="l2,pca:0.9")
    assert res["reduced_dim"] < 16
    assert api.evaluate(coloured_ws)["acc"] == 1.0


def test_cli_cluster_evaluate_runs(coloured_ws, capsys, tmp_path):
    ws = str(coloured_ws)
    assert main(["cluster", "-w", ws, "--k", "3", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["evaluate", "-w", ws, "--run", str(run_id), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert {"acc", "nmi", "ari", "purity", "n_clusters", "n_images"} <= set(ev)
    assert main(["runs", "-w", ws]) == 0
    assert "cluster" in capsys.readouterr().out
    assert main(["export-clusters", "-w", ws, "--out", str(tmp_path / "a.csv")]) == 0
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "id,path,label,cluster,cluster_name,silhouette" and len(lines) == 31
    assert main(["cluster", "-w", ws, "--k", "banana"]) == 2
    assert "expected an int or 'auto'" in capsys.readouterr().err
    # options come from the registry: one that the method does not take is refused
    assert main(["cluster", "-w", ws, "--method", "kmeans", "--eps", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--eps applies to dbscan, not kmeans" in err and len(err.splitlines()) == 1
    assert main(["cluster", "-w", ws, "--method", "gmm", "--k", "3", "--covariance", "diag",
                 "--json"]) == 0
    rec = api.runs(ws, "cluster")[-1]
    assert rec["params"]["options"] == {"covariance_type": "diag"}
    assert rec["params"]["estimators"]["cluster"]["covariance_type"] == "diag"
    assert rec["params"]["estimators"]["reduce"]["class"] == "Pipeline"


def test_evaluate_needs_labels(tmp_path, cache_dir, image_dir):
    api.scan(image_dir, tmp_path / "ws")  # no labels
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    api.cluster(tmp_path / "ws", k=2)
    with pytest.raises(ConfigError, match="labels-from-folders"):
        api.evaluate(tmp_path / "ws")
