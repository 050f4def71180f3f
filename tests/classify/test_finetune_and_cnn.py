"""--mode finetune and --mode cnn-small on real photos (the bundled sample), kept tiny: one
or two epochs. PyTorch trains; the saved models predict through ONNX Runtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from imgatlas import api
from imgatlas.classify import open_model

pytest.importorskip("torch")
SAMPLE = ROOT / "samples" / "clothing"


@pytest.fixture(scope="module")
def photo_ws(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("photos")
    for cls in ("shoes", "hat", "pants"):
        shutil.copytree(SAMPLE / cls, root / cls)
    ws = root.parent / "photo-ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    return ws


def test_finetune_trains_the_last_blocks_and_exports_one_graph(photo_ws, cache_dir, tmp_path,
                                                               monkeypatch):
    from imgatlas.classify import _train

    monkeypatch.setattr(_train, "keep_finetune", lambda ft, head: True)  # test the export
    res = api.train(photo_ws, mode="finetune", name="ft", epochs=2, cache_dir=cache_dir)
    folder = photo_ws / "models" / "ft"
    meta = json.loads((folder / "model.json").read_text())
    assert meta["kind"] == "finetune" and (folder / "model.onnx").is_file()
    assert meta["finetune"]["tuned_blocks"] == [12, 13, 14, 15]
    assert meta["finetune"]["epochs_run"] <= 2
    assert {"logistic", "mlp", "finetune"} <= set(res["heads"])
    assert res["metrics"]["accuracy"] >= 0.6  # 3 easy classes, 2 epochs
    # the exported graph is the trained model: its test predictions give the recorded score
    model = open_model(folder, cache_dir)
    test_ids = meta["split"]["test"]
    from imgatlas.store import Workspace

    with Workspace.open(photo_ws) as w:
        rows = {r.id: r for r in w.images()}
    paths = [rows[i].path for i in test_ids]
    preds = api.predict(folder, paths, cache_dir=cache_dir, min_probability=0,
                        min_similarity=-1)
    acc = np.mean([p["label"] == rows[i].label for p, i in zip(preds, test_ids, strict=True)])
    assert acc == pytest.approx(res["metrics"]["accuracy"])
    assert model.kind == "finetune" and len(preds[0]["nearest"]) == 3
    assert not list((photo_ws / "models").glob(".*"))  # no work files left behind


def test_finetune_that_does_not_beat_the_head_keeps_the_head(photo_ws, cache_dir,
                                                              monkeypatch):
    from imgatlas.classify import _train

    monkeypatch.setattr(_train, "keep_finetune", lambda ft, head: False)
    res = api.train(photo_ws, mode="finetune", name="ft2", epochs=1, cache_dir=cache_dir)
    folder = photo_ws / "models" / "ft2"
    assert res["kind"] == "head" and "finetune" in res["heads"]
    assert (folder / "head.npz").is_file() and not (folder / "model.onnx").exists()
    assert any("the head is kept" in n for n in res["notes"])


def test_cnn_small_is_the_baseline(photo_ws, cache_dir):
    res = api.train(photo_ws, mode="cnn-small", name="cnn", epochs=2, cache_dir=cache_dir)
    folder = photo_ws / "models" / "cnn"
    meta = json.loads((folder / "model.json").read_text())
    assert meta["kind"] == "cnn-small" and meta["preprocessing"]["input_size"] == [64, 64]
    assert "cnn-small" in res["heads"]
    out = subprocess.run(
        [sys.executable, "-c", "import imgatlas, json, sys; print(json.dumps(imgatlas.predict("
         f"{str(folder)!r}, [sys.argv[1]])))", str(next((SAMPLE / 'hat').iterdir()))],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["top_k"][0]["label"] in ("shoes", "hat", "pants")


def test_finetune_needs_an_efficientnet_backbone(tmp_path, cache_dir):
    from conftest import colour_groups
    from imgatlas.errors import ConfigError

    root = colour_groups(tmp_path / "img", {"r": (200, 0, 0), "b": (0, 0, 200)}, 8)
    api.scan(root, tmp_path / "ws", labels_from_folders=True)
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="tunes an EfficientNet-Lite backbone"):
        api.train(tmp_path / "ws", mode="finetune", cache_dir=cache_dir)
