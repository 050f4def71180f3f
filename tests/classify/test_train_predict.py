"""train -> predict -> evaluate-model -> compare-models through the CLI and the API, on
generated colour classes embedded with the tiny test backbone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import colour_groups
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.store import Workspace

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture()
def ws(tmp_path, cache_dir):
    root = colour_groups(tmp_path / "img", COLOURS, 14)
    path = tmp_path / "ws"
    api.scan(root, path, labels_from_folders=True)
    api.embed(path, backbone="test_tiny", cache_dir=cache_dir)
    return path


def test_train_head_and_its_model_folder(ws, capsys, cache_dir):
    assert main(["train", "-w", str(ws), "--name", "colours", "--json", "--cache-dir",
                 str(cache_dir)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mode"] == "head" and res["classes"] == ["blue", "green", "red"]
    assert res["metrics"]["accuracy"] > 0.9 and "mlp" in res["heads"]
    assert {h for h in res["heads"] if h.startswith("logistic C=")} == {
        "logistic C=0.3", "logistic C=1", "logistic C=3", "logistic C=10", "logistic C=30"}
    # chosen by cross-validation over all 42 labels, then refitted on all of them
    est = res["metrics"]["estimate"]
    assert est["images"] == 42 and est["folds"] == 5 and 0 <= est["standard_error"] < 0.1
    assert res["metrics"]["estimate_kind"] == "cross-validated"
    assert res["selection"] in res["heads"]
    folder = Path(res["model"])
    assert folder == ws / "models" / "colours"
    assert {"model.json", "head.npz", "evidence.npz"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "model.json").read_text())
    assert meta["split"]["n_folds"] == 5 and "refitted on all 42" in meta["protocol"]
    evidence = np.load(folder / "evidence.npz")
    assert len(evidence["ids"]) == 42  # every labelled image is what the model learned
    assert meta["backbone"]["name"] == "test_tiny" and meta["temperature"] > 0
    assert meta["abstain"]["min_probability"] == 0.5 and "rule" in meta["abstain"]
    assert "ece" in meta["metrics"] and "ece_uncalibrated" in meta["metrics"]
    (run,) = api.runs(ws, "train")
    assert run["status"] == "done" and run["results"]["name"] == "colours"
    assert main(["train", "-w", str(ws)]) == 0  # human output, default name
    out = capsys.readouterr().out
    assert "logistic" in out and "ECE" in out and "head-r" in out


def _one_image(path: Path, rgb) -> Path:
    a = np.clip(np.array(rgb) + np.random.default_rng(9).normal(0, 12, (32, 32, 3)), 0, 255)
    Image.fromarray(a.astype(np.uint8)).save(path)
    return path


def test_predict_from_a_copied_folder_without_torch(ws, tmp_path, cache_dir):
    api.train(ws, name="m", cache_dir=cache_dir)
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(ws / "models" / "m", moved)
    red = _one_image(tmp_path / "red.png", (220, 30, 30))
    script = NO_TORCH + f"""
import json, imgatlas
out = imgatlas.predict({str(moved)!r}, [{str(red)!r}], k=2, cache_dir={str(cache_dir)!r})
print(json.dumps(out))
print("torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    (pred,) = json.loads(lines[0])
    assert lines[1] == "False"
    assert pred["label"] == "red" and not pred["abstained"]
    assert {"path", "label", "probability", "top_k", "abstained"} <= set(pred)
    assert len(pred["top_k"]) == 2 and pred["top_k"][0]["label"] == "red"
    assert pred["nearest"][0]["label"] == "red" and pred["nearest"][0]["similarity"] > 0.9


def test_unknown_when_unsure_or_far(ws, tmp_path, cache_dir, capsys):
    api.train(ws, name="m", cache_dir=cache_dir)
    grey = _one_image(tmp_path / "grey.png", (128, 128, 128))
    far = api.predict(ws / "models" / "m", [grey], cache_dir=cache_dir,
                      min_similarity=0.999)[0]
    assert far["label"] == "unknown" and far["abstained"] and "far from" in far["reason"]
    unsure = api.predict(ws / "models" / "m", [grey], cache_dir=cache_dir,
                         min_similarity=-1, min_probability=1.0)[0]
    assert unsure["abstained"] and "not confident" in unsure["reason"]
    assert main(["predict", "--model", str(ws / "models" / "m"), str(grey), "--cache-dir",
                 str(cache_dir), "--min-probability", "1.0", "--min-similarity", "-1"]) == 0
    assert "unknown (not confident" in capsys.readouterr().out


def test_evaluate_and_compare_models(ws, tmp_path, cache_dir, capsys):
    api.train(ws, name="a", cache_dir=cache_dir)
    api.train(ws, name="b", seed=1, cache_dir=cache_dir)
    # every label trained the model: on its own workspace nothing is left to score it on
    with pytest.raises(ConfigError, match="nothing is left to score"):
        api.evaluate_model(ws / "models" / "a", ws, cache_dir=cache_dir)
    new = colour_groups(tmp_path / "new", COLOURS, 5, shape=(30, 30))
    assert main(["evaluate-model", "--model", str(ws / "models" / "a"), str(new), "--json",
                 "--cache-dir", str(cache_dir)]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["n_images"] == 15 and fresh["n_excluded_training"] == 0
    assert {"accuracy", "balanced_accuracy", "per_class", "confusion", "ece",
            "n_images"} <= set(fresh) and fresh["accuracy"] > 0.9
    cmp = api.compare_models(ws / "models" / "a", ws / "models" / "b", new,
                             cache_dir=cache_dir)
    t = cmp["table"]
    assert sum(t.values()) == 15 == cmp["n_images"]
    assert cmp["accuracy_a"] == pytest.approx((t["a"] + t["b"]) / 15)
    assert 0 <= cmp["p_value"] <= 1 and cmp["method"] == "exact"
    assert main(["compare-models", "--model", str(ws / "models" / "a"), "--model",
                 str(ws / "models" / "b"), str(new), "--cache-dir", str(cache_dir)]) == 0
    assert "McNemar (exact)" in capsys.readouterr().out


def test_errors_are_one_line(ws, tmp_path, capsys, cache_dir):
    api.train(ws, name="m", cache_dir=cache_dir)
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        (["predict", "--model", str(tmp_path / "nowhere"), "x.jpg"], "not an imgatlas model"),
        (["predict", "--model", str(ws / "models" / "m"), str(tmp_path / "notes.png")],
         "Cannot read"),
        (["train", "-w", str(ws), "--labels", str(tmp_path / "missing.csv")], "none of them"),
        (["train", "-w", str(ws), "--mode", "cnn"], "Invalid value"),
        (["train", "-w", str(ws), "--name", "../escape"], "--name must be"),
    ]
    for argv, needle in cases:
        code = main(argv + ["--cache-dir", str(cache_dir)] if argv[0] == "predict" else argv)
        err = capsys.readouterr().err
        assert code != 0 and needle in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    one = tmp_path / "one.csv"
    with Workspace.open(ws) as w:
        rows = w.images()[:3]
    one.write_text("path,label\n" + "".join(f"{r.display},cat\n" for r in rows))
    with pytest.raises(ConfigError, match="at least 2 classes"):
        api.train(ws, labels=str(one))
    with pytest.raises(DecodeError, match="notes.png"):
        api.predict(ws / "models" / "m", [tmp_path / "notes.png"], cache_dir=cache_dir)


def test_model_backbone_must_still_be_the_same(ws, tmp_path, cache_dir):
    api.train(ws, name="m", cache_dir=cache_dir)
    meta_path = ws / "models" / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    # a single-backbone model records its backbone both ways; prediction reads the list
    records = [meta["backbone"], *meta.get("backbones", [])]
    for rec in records:
        rec["identity"] = "something-else"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="not the one the model was trained with"):
        api.predict(ws / "models" / "m", [_one_image(tmp_path / "r.png", (220, 30, 30))],
                    cache_dir=cache_dir)
    for rec in records:
        rec["name"] = "no_such_backbone"
        rec["weights"] = str(tmp_path / "gone.onnx")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="not available"):
        api.predict(ws / "models" / "m", [tmp_path / "r.png"], cache_dir=cache_dir)


def test_killed_training_leaves_a_valid_workspace(ws, tmp_path, cache_dir):
    """kill -9 in the middle of training (a slow MLP epoch); the rerun works and the
    workspace holds no half-written model."""
    script = f"""
import time
from imgatlas.classify import _heads
real = _heads.MLPHead._step
def slow(self, *a, **k):
    time.sleep(0.05)
    return real(self, *a, **k)
_heads.MLPHead._step = slow
from imgatlas import api
api.train({str(ws)!r}, name="m", cache_dir={str(cache_dir)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = api.runs(ws, "train")
        if runs and runs[-1]["status"] == "running":
            break
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (ws / "models" / "m").exists()
    res = api.train(ws, name="m", cache_dir=cache_dir)
    assert Path(res["model"]).is_dir()
    statuses = [r["status"] for r in api.runs(ws, "train")]
    assert statuses == ["interrupted", "done"]
    assert not [p for p in (ws / "models").iterdir() if p.name.startswith(".")]


def test_a_head_on_two_backbones_side_by_side(ws, tmp_path, cache_dir):
    api.embed(ws, backbone="raw_pixels_32", cache_dir=cache_dir)
    res = api.train(ws, name="two", features="test_tiny,raw_pixels_32", cache_dir=cache_dir)
    meta = json.loads((ws / "models" / "two" / "model.json").read_text())
    assert [b["name"] for b in meta["backbones"]] == ["test_tiny", "raw_pixels_32"]
    assert res["metrics"]["accuracy"] > 0.9
    red = _one_image(tmp_path / "red.png", (220, 30, 30))
    (pred,) = api.predict(ws / "models" / "two", [red], cache_dir=cache_dir,
                          min_similarity=-1)
    assert pred["label"] == "red"
    # the images decoded for prediction give the stored features' answers (the same decode)
    with Workspace.open(ws) as w:
        paths = [os.fsdecode(r.path) for r in w.images()[:6]]
    from imgatlas.classify import open_model

    m = open_model(ws / "models" / "two", cache_dir)
    files = api.predict(ws / "models" / "two", paths, cache_dir=cache_dir, min_similarity=-1,
                        min_probability=0)
    with Workspace.open(ws) as w:
        from imgatlas.classify._features import read_features

        _, X = read_features([w.pick_store("test_tiny"), w.pick_store("raw_pixels_32")],
                             np.array([r.id for r in w.images()[:6]]))
    stored = m.probabilities(m.logits_from_features(X)).argmax(1)
    assert [f["top_k"][0]["label"] for f in files] == [m.classes[j] for j in stored]
    with pytest.raises(ConfigError, match="trains on one backbone"):
        api.train(ws, mode="finetune", features="test_tiny,raw_pixels_32")


def test_a_head_on_int8_features_predicts_in_another_workspace(tmp_path, cache_dir):
    """int8 features come from the shipped calibration, not the collection's: a model
    trained on one workspace's int8 features predicts new files with the same graph."""
    root = colour_groups(tmp_path / "img", COLOURS, 14)
    path = tmp_path / "ws8"
    api.scan(root, path, labels_from_folders=True)
    emb = api.embed(path, backbone="test_tiny", cache_dir=cache_dir, precision="int8")
    res = api.train(path, name="m8", features=emb["store"], cache_dir=cache_dir)
    rec = json.loads((Path(res["model"]) / "model.json").read_text())["backbone"]
    assert rec["precision"] == "int8" and rec["calibration"]
    red = _one_image(tmp_path / "red.png", (220, 30, 30))
    (pred,) = api.predict(path / "models" / "m8", [red], cache_dir=tmp_path / "other-cache")
    assert pred["label"] == "red"
    # the training image itself gets its stored features back: the same int8 graph
    first = sorted((root / "red").iterdir())[0]
    (again,) = api.predict(path / "models" / "m8", [first], cache_dir=cache_dir)
    assert again["nearest"][0]["similarity"] > 0.999
