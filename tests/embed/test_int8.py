from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pytest

from conftest import shared_data, write_image
from imgatlas import api
from imgatlas.backbones import (
    bundled_calibration,
    calibration_pixels,
    create_backbone,
    int8_model_name,
    quantize_onnx,
)
from imgatlas.embed import with_precision
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace


def _stores(ws):
    """Every store's cfg and vectors, by key."""
    with Workspace.open(ws) as w:
        return {s.key: (s.cfg, *s.read()) for s in w.feature_stores()}


def test_int8_store_is_its_own_and_the_graph_is_shared_through_the_cache(
        image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    fp32 = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    q = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert q["embedded"] == 12 and q["store"] != fp32["store"] and "-int8" in q["store"]
    assert not list((ws / "backbones").glob("*int8*"))  # not the workspace's own
    (model,) = (cache_dir / "backbones").glob(f"test_tiny-*-int8-{bundled_calibration()}.onnx")
    made = model.stat().st_mtime_ns
    again = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert (again["embedded"], again["already_done"], again["store"]) == (0, 12, q["store"])
    stores = _stores(ws)
    assert stores[q["store"]][0]["backbone"]["precision"] == "int8"
    assert stores[q["store"]][0]["backbone"]["calibration"] == bundled_calibration()
    assert "precision" not in stores[fp32["store"]][0]["backbone"]
    _, _, X8 = stores[q["store"]]
    _, _, X = stores[fp32["store"]]
    cos = (X * X8).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X8, axis=1)
    assert cos.mean() > 0.9  # a random 16-d net: only that the int8 graph is the same net

    # another collection holding one of these images gives it the same features: the
    # calibration does not depend on the collection
    other = tmp_path / "other"
    first = sorted(image_dir.rglob("*.png"))[0]
    (other / "x").mkdir(parents=True)
    shutil.copy(first, other / "x" / "same.png")
    write_image(other / "x" / "new.png", 50, 48, seed=99)
    ws2 = tmp_path / "ws2"
    api.scan(other, ws2)
    q2 = api.embed(ws2, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert q2["store"] == q["store"]
    assert model.stat().st_mtime_ns == made  # made once per model cache
    with Workspace.open(ws) as w:
        id1 = next(r.id for r in w.images() if os.fsdecode(r.path).endswith(first.name))
    with Workspace.open(ws2) as w:
        id2 = next(r.id for r in w.images() if os.fsdecode(r.path).endswith("same.png"))
    ids1, _ = stores[q["store"]][1:]
    X2ids, X2 = _stores(ws2)[q["store"]][1:]
    np.testing.assert_array_equal(X8[list(ids1).index(id1)], X2[list(X2ids).index(id2)])


def test_queries_reopen_the_int8_graph_and_a_cleared_cache_makes_it_again(
        image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    api.build_index(ws)
    query = sorted(image_dir.rglob("*.png"))[0]
    (hits,) = api.search(ws, [query], k=3, cache_dir=cache_dir)
    assert hits["results"][0]["path"] == str(query) and hits["results"][0]["exact"]
    empty = tmp_path / "fresh-cache"
    (again,) = api.search(ws, [query], k=3, cache_dir=empty)
    assert again["results"] == hits["results"]
    assert list((empty / "backbones").glob("test_tiny-*-int8-*.onnx"))


def test_a_workspace_calibrated_on_its_own_images_keeps_its_graph(image_dir, tmp_path,
                                                                 cache_dir):
    """Workspaces from before the shipped calibration: their graph embeds their new images,
    their features are refused for training (no other collection gets them), and a missing
    graph is one line."""
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    base = create_backbone("test_tiny", cache_dir=cache_dir)
    own = ws / "backbones" / int8_model_name(base, "0123456789")
    quantize_onnx(base.onnx_path(), own, calibration_pixels(base)[:4])
    q = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    assert "-int8" in q["store"]
    with Workspace.open(ws) as w:
        assert w.feature_store(q["store"]).cfg["backbone"]["calibration"] == "0123456789"
    with pytest.raises(ConfigError, match="calibrated on this collection"):
        api.train(ws, features=q["store"], cache_dir=cache_dir)
    api.build_index(ws)
    query = sorted(image_dir.rglob("*.png"))[0]
    assert api.search(ws, [query], k=1, cache_dir=cache_dir)[0]["results"][0]["exact"]
    own.unlink()
    with pytest.raises(ConfigError, match="int8 model .* is missing"):
        api.search(ws, [query], k=3, cache_dir=cache_dir)


def test_auto_keeps_the_workspace_precision_else_the_backbone_default(image_dir, tmp_path,
                                                                    cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    base = create_backbone("test_tiny", cache_dir=cache_dir)
    assert base.default_precision == "fp32"
    base.default_precision = "int8"  # as the EfficientNet-Lite factory sets it
    with Workspace.open(ws) as w:
        assert with_precision(w, base, "auto", cache_dir).precision == "int8"
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, precision="fp32")
    with Workspace.open(ws) as w:  # a workspace embedded in fp32 stays fp32
        assert with_precision(w, base, "auto", cache_dir).precision == "fp32"
        assert with_precision(w, base, "int8", cache_dir).precision == "int8"
    # the default backbone declares int8 (the factory only; nothing is built)
    assert create_backbone("efficientnet_lite0", cache_dir=cache_dir).default_precision == "int8"


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
    a = api.embed(ws, cache_dir=cache_dir, precision="fp32")
    b = api.embed(ws, cache_dir=cache_dir, precision="int8")
    stores = _stores(ws)
    _, ids, X = stores[a["store"]]
    _, ids8, X8 = stores[b["store"]]
    assert (ids == ids8).all()
    cos = (X * X8).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X8, axis=1)
    assert cos.mean() >= 0.98, cos
