"""index --sketch --adapt: the line branch distilled on the collection's photos, kept in the
workspace, used for the line maps and the drawings, reused until the collection changes,
resumable after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_sketch_search import SHAPES, _draw, pairs_workspace

from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("distil")
    return root, pairs_workspace(root, 14, 3, 1, cache_dir)


def test_distil_index_search_and_reuse(shapes, cache_dir, capsys):
    root, ws = shapes
    res = api.build_index(ws, sketch=True, adapt=True, cache_dir=cache_dir)
    d = res["distilled"]
    assert d["photos"] == 42 and d["held_out"] == 20 and d["epochs_run"] >= 1
    assert res["map"]["sketch_shift"] == "none (distilled lines)"
    assert d["val_loss"] < d["val_loss_before"]  # the line maps moved towards the photos
    assert res["line_backbone"] == "efficientnet_lite0-lines"
    models = list((ws / "backbones").glob("efficientnet_lite0-lines-*.onnx"))
    assert len(models) == 1 and models[0].with_suffix(".json").is_file()
    assert not list((ws / "backbones").glob(".distill-*"))  # the work folder is gone
    with Workspace.open(ws) as w:
        lines = w.feature_store(res["line_store"])
        assert lines.cfg["backbone"]["derived"]["kind"] == "lines"
    hits = api.search_sketch(ws, [root / "pairs" / "sketch" / "circle" / "circle0-0.png"],
                             k=5, cache_dir=cache_dir)[0]["results"]
    assert len(hits) == 5
    ev = api.evaluate_sketch(ws, root / "pairs" / "sketch", cache_dir=cache_dir)
    assert ev["n_queries"] == 9 and ev["map"] > 0.4  # chance is about 0.36
    # the same collection: the distilled network is reused, the map refitted
    assert main(["index", "-w", str(ws), "--sketch", "--adapt", "--cache-dir",
                 str(cache_dir), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["distilled"]["reused"] and again["line_store"] == res["line_store"]
    assert again["embedded"] == 0
    # the plain index goes back to the photos' own network for the lines
    plain = api.build_index(ws, sketch=True, cache_dir=cache_dir)
    assert plain["line_backbone"] == "efficientnet_lite0" and plain["distilled"] is None
    assert api.search_sketch(ws, [root / "pairs" / "sketch" / "square" / "square0-0.png"],
                             k=3, cache_dir=cache_dir)[0]["results"]


def test_an_interrupted_distillation_resumes_from_its_cached_activations(
        shapes, cache_dir, monkeypatch, tmp_path):
    import shutil

    from imgatlas.sketch import _distill

    root, src = shapes
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    for f in (ws / "backbones").glob("efficientnet_lite0-lines-*"):
        f.unlink()
    calls = []
    real = _distill.photo_line_grey
    monkeypatch.setattr(_distill, "photo_line_grey",
                        lambda *a, **k: calls.append(1) or real(*a, **k))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(_distill, "fit_tail", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.build_index(ws, sketch=True, adapt=True, cache_dir=cache_dir)
    assert len(calls) == 42 and list((ws / "backbones").glob(".distill-*/acts-*.npy"))
    monkeypatch.undo()
    monkeypatch.setattr(_distill, "photo_line_grey",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    res = api.build_index(ws, sketch=True, adapt=True, cache_dir=cache_dir)
    assert len(calls) == 42  # no photo's line map made twice
    assert res["distilled"]["photos"] == 42


def test_adapt_needs_an_efficientnet_lite_and_enough_photos(tmp_path, cache_dir):
    from conftest import colour_groups

    root = colour_groups(tmp_path / "img", {"a": (200, 30, 30), "b": (30, 30, 200)}, 6)
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="EfficientNet-Lite"):
        api.build_index(ws, sketch=True, adapt=True, cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="go with --sketch"):
        api.build_index(ws, adapt=True, cache_dir=cache_dir)


def test_too_few_photos_to_distil(tmp_path, cache_dir):
    rng = np.random.default_rng(0)
    d = tmp_path / "img"
    d.mkdir()
    for j in range(12):
        _draw(SHAPES[j % 3], rng, 120, True).save(d / f"{j}.jpg")
    ws = tmp_path / "ws"
    api.scan(d, ws)
    api.embed(ws, cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="at least 40 photos"):
        api.build_index(ws, sketch=True, adapt=True, cache_dir=cache_dir)
    assert not Path(ws / "backbones").exists() or not list((ws / "backbones").glob("*lines*"))
