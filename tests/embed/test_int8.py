from __future__ import annotations

import glob
import shutil

import numpy as np
import pytest

from conftest import shared_data
from imgatlas import api
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace


def _stores(ws):
    """Every store's cfg and vectors, by key."""
    with Workspace.open(ws) as w:
        return {s.key: (s.cfg, *s.read()) for s in w.feature_stores()}


def test_int8_store_is_its_own_and_the_graph_is_made_once(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    fp32 = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    q = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert q["embedded"] == 12 and q["store"] != fp32["store"] and "-int8" in q["store"]
    (model,) = (ws / "backbones").glob("test_tiny-*-int8-*.onnx")
    made = model.stat().st_mtime_ns
    # new images later: the same graph embeds them (the first calibration sticks)
    again = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert (again["embedded"], again["already_done"], again["store"]) == (0, 12, q["store"])
    assert model.stat().st_mtime_ns == made
    stores = _stores(ws)
    assert stores[q["store"]][0]["backbone"]["precision"] == "int8"
    assert "precision" not in stores[fp32["store"]][0]["backbone"]
    _, _, X8 = stores[q["store"]]
    _, _, X = stores[fp32["store"]]
    cos = (X * X8).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X8, axis=1)
    assert cos.mean() > 0.9  # a random 16-d net: only that the int8 graph is the same net


def test_queries_reopen_the_workspace_int8_graph(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    api.build_index(ws)
    query = sorted(image_dir.rglob("*.png"))[0]
    (hits,) = api.search(ws, [query], k=3, cache_dir=cache_dir)
    assert hits["results"][0]["path"] == str(query) and hits["results"][0]["exact"]
    for model in (ws / "backbones").glob("*.onnx"):
        model.unlink()
    with pytest.raises(ConfigError, match="int8 model .* is missing"):
        api.search(ws, [query], k=3, cache_dir=cache_dir)


def test_bad_precision_is_refused(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    with pytest.raises(ConfigError, match="precision must be one of"):
        api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int4")


def test_int8_lite0_keeps_the_features_of_real_photos(tmp_path, cache_dir):
    """The default backbone quantised on a real collection: features at cosine >= 0.98 to
    fp32 on average (benchmarks/bench_int8.py measures the dev sets: ~0.99)."""
    root = shared_data("rooms")
    src = tmp_path / "photos"
    for i, f in enumerate(sorted(glob.glob(str(root / "*" / "*.jpg")))[::25][:24]):
        src.mkdir(exist_ok=True)
        shutil.copy(f, src / f"{i}.jpg")
    ws = tmp_path / "ws"
    api.scan(src, ws)
    a = api.embed(ws, cache_dir=cache_dir)
    b = api.embed(ws, cache_dir=cache_dir, precision="int8")
    stores = _stores(ws)
    _, ids, X = stores[a["store"]]
    _, ids8, X8 = stores[b["store"]]
    assert (ids == ids8).all()
    cos = (X * X8).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X8, axis=1)
    assert cos.mean() >= 0.98, cos
