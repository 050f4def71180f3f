"""The registries: one idiom to pick clustering methods, reductions and code families by
name, with what the CLI, the API and the web app need to know about each."""

from __future__ import annotations

import json

import pytest

from imgatlas import api
from imgatlas.cli import main
from imgatlas.cluster import CLUSTERERS, build_method
from imgatlas.errors import ConfigError
from imgatlas.index import CODES, parse_spec
from imgatlas.reduce import REDUCERS, make_reducer
from imgatlas.registry import Param, Registry


def test_param_converts_and_refuses_clearly():
    p = Param("k", int, 10, "neighbours")
    assert p.convert("12", "x") == 12 and p.flag == "--k"
    with pytest.raises(ConfigError, match="The 'k' parameter of x must be a int. Got 'a'"):
        p.convert("a", "x")
    c = Param("linkage", str, "ward", "", ("ward", "single"))
    with pytest.raises(ConfigError, match="must be one of ward, single"):
        c.convert("median", "agglomerative")
    assert Param("covariance_type", cli="covariance").flag == "--covariance"


def test_registry_refuses_unknown_names_and_duplicates():
    r = Registry("widget")

    @r.register("a", help="first", params=(Param("x", int, 1),), takes_k=True)
    def a(**kw):
        return kw

    with pytest.raises(ValueError, match="registered twice"):
        r.register("a", help="again")(a)
    with pytest.raises(ConfigError, match="Unknown widget 'b'; choose one of a"):
        r["b"]
    with pytest.raises(ConfigError, match="a does not take 'y'"):
        r["a"].options({"y": 2})
    assert r["a"].options({"x": "3", "z": None}) == {"x": 3}
    assert r.describe() == [{"name": "a", "help": "first", "takes_k": True, "needs": None,
                             "params": [{"name": "x", "type": "int", "default": 1,
                                         "help": "", "choices": None, "cli": None,
                                         "low": None, "high": None, "low_open": False}]}]


def test_every_clustering_method_is_built_from_its_entry():
    for entry in CLUSTERERS:
        est = build_method(entry.name, 4 if entry.takes_k else None)
        params = est.get_params()
        for p in entry.params:
            assert p.name in params, (entry.name, p.name)  # a declared option reaches it
        if entry.takes_k:
            assert params["n_clusters"] == 4
    with pytest.raises(ConfigError, match="Unknown clustering method 'kmeanz'"):
        build_method("kmeanz", 3)
    agg = build_method("agglomerative", 4, {"distance_threshold": 2.0})
    assert agg.n_clusters is None and agg.distance_threshold == 2.0


def test_reductions_and_codes_come_from_their_registries():
    assert set(REDUCERS.names()) == {"none", "l2", "knn-smooth", "pca", "pca-whiten", "umap"}
    pipe = make_reducer("l2,pca-whiten:16:0.2,knn-smooth:5:1")
    assert [type(s).__name__ for _, s in pipe.steps] == ["L2Normalizer", "PCAReducer",
                                                         "KNNSmoother"]
    assert pipe.steps[1][1].whiten_power == 0.2 and pipe.steps[2][1].n_iter == 1
    assert make_reducer("none") is None
    for entry in CODES:
        spec = parse_spec(entry.name)
        assert spec.size == entry.extra["default_size"]
        for m in entry.extra["modifiers"]:
            assert parse_spec(f"{entry.name}+{m}").modifier == m


def test_algorithms_lists_every_registry(capsys):
    res = api.algorithms()
    assert {e["name"] for e in res["clustering"]} == set(CLUSTERERS.names())
    assert "efficientnet_lite0" in {e["name"] for e in res["backbones"]}
    assert main(["algorithms", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(res))
    assert main(["algorithms"]) == 0
    out = capsys.readouterr().out
    assert "kmedoids" in out and "needs the 'kmedoids' extra" in out and "itq" in out


def test_parameter_bounds_are_checked_by_the_api_and_the_cli_alike():
    import click

    p = Param("n", int, 5, "count", low=1, high=10)
    assert p.convert("3", "thing") == 3
    for bad in ("0", "11", -2):
        with pytest.raises(ConfigError, match="'n' parameter of thing must be between 1 and 10"):
            p.convert(bad, "thing")
    eps = Param("eps", float, None, "radius", low=0, low_open=True)
    with pytest.raises(ConfigError, match="must be above 0"):
        eps.convert("0", "dbscan")
    with pytest.raises(ConfigError, match="must be above 0"):
        eps.convert("nan", "dbscan")
    assert isinstance(p.click_type(), click.IntRange) and p.click_type().max == 10
    assert isinstance(eps.click_type(), click.FloatRange) and eps.click_type().min_open
