"""export --as-dataset: stratified train/val/test folders with every near-duplicate group in
one split, a manifest, the source untouched; and every refusal in one line."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_scene
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError
from imgatlas.export import assign_splits, parse_split
from imgatlas.export._splits import whole_counts

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_folder(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """torchvision.datasets.ImageFolder's discovery (find_classes + make_dataset, which
    cannot be installed here): classes are the sorted sub-folders, samples every file with
    an image extension below them, links followed."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    samples = []
    for k, c in enumerate(classes):
        for dirpath, _dirs, files in sorted(os.walk(root / c, followlinks=True)):
            samples += [(os.path.join(dirpath, f), k) for f in sorted(files)
                        if f.lower().endswith(IMG_EXTENSIONS)]
    return classes, samples


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def collection(tmp_path_factory, cache_dir):
    """Four labels of 12 different scenes, one with 2 only, three planted copy pairs and an
    exact duplicate; scanned, embedded and inspected."""
    root = tmp_path_factory.mktemp("dataset") / "photos"
    seed = 0
    for label, n in (("cat", 12), ("dog", 12), ("owl", 12), ("eel", 2)):
        for j in range(n):
            write_scene(root / label / f"{label}{j}.jpg", seed=seed, quality=92)
            seed += 1
    for label in ("cat", "dog", "owl"):
        Image.open(root / label / f"{label}0.jpg").save(root / label / "copy.jpg", quality=55)
    (root / "cat" / "cat1-same.jpg").write_bytes((root / "cat" / "cat1.jpg").read_bytes())
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    api.inspect(ws)
    return root, ws


def _manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_dataset_is_stratified_leak_free_and_readable(collection, tmp_path, capsys):
    root, ws = collection
    before = tree_digest(root)
    out = tmp_path / "ds"
    assert main(["export", "-w", str(ws), "--as-dataset", str(out), "--split",
                 "0.5,0.25,0.25", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert tree_digest(root) == before  # the source untouched
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "test", "train", "val"]
    rows = _manifest(out)
    by_split = Counter(r["split"] for r in rows if r["split"])
    assert res["splits"] == {s: by_split[s] for s in ("train", "val", "test")}
    # the copies are out (with why), so each planted group is one image in one split
    out_rows = [r for r in rows if r["left_out"]]
    assert {Path(r["source_path"]).name for r in out_rows} >= {"copy.jpg", "cat1-same.jpg"}
    assert all(r["left_out"].startswith("duplicates") for r in out_rows
               if Path(r["source_path"]).name in ("copy.jpg", "cat1-same.jpg"))
    # stratified: 12 a label less the copies -> 6/3/3 (eel: 2 < 3 splits, all in train)
    for label in ("cat", "dog", "owl"):
        assert res["labels"][label] == {"train": 6, "val": 3, "test": 3}
    assert res["labels"]["eel"] == {"train": 2, "val": 0, "test": 0}
    assert any("'eel' has 2 image(s)" in n for n in res["notes"])
    classes, samples = image_folder(out / "train")
    assert classes == ["cat", "dog", "eel", "owl"] and len(samples) == res["splits"]["train"]
    for path, k in samples:  # each sample is its label's image, byte for byte
        row = next(r for r in rows if r["file_name"] and
                   (out / r["file_name"]).resolve() == Path(path).resolve())
        assert row["label"] == classes[k] and row["split"] == "train"
        assert Path(path).read_bytes() == Path(row["source_path"]).read_bytes()


def test_copies_kept_stay_with_their_original(collection, tmp_path):
    _root, ws = collection
    for seed in range(3):
        out = tmp_path / f"ds{seed}"
        res = api.export_dataset(ws, out, split="0.6,0.2,0.2", exclude=[],
                                 seed=seed, mode="copy")
        rows = _manifest(out)
        assert not any(r["left_out"] for r in rows if r["label"])
        groups: dict[str, set[str]] = {}
        for r in rows:
            if r["near_duplicate_group"]:
                groups.setdefault(r["near_duplicate_group"], set()).add(r["split"])
        assert len(groups) >= 4 and all(len(s) == 1 for s in groups.values())
        assert sum(res["splits"].values()) == len([r for r in rows if r["split"]])


def test_two_splits_are_train_and_test(collection, tmp_path):
    _root, ws = collection
    res = api.export_dataset(ws, tmp_path / "two", split="0.8,0.2")
    assert set(res["splits"]) == {"train", "test"}
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "manifest.csv", "test", "train"]


@pytest.mark.parametrize("split, message", [
    ("0.7,0.2,0.2", "must sum to 1"),
    ("0.7,0.3,0", "must be above 0"),
    ("1", "two or three shares"),
    ("0.5,a", "two or three shares such as"),
])
def test_bad_shares_are_refused_and_nothing_written(collection, tmp_path, capsys, split,
                                                    message):
    _root, ws = collection
    out = tmp_path / "ds"
    code = main(["export", "-w", str(ws), "--as-dataset", str(out), "--split", split])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_out_not_empty_or_inside_the_source_is_refused(collection, tmp_path, capsys):
    root, ws = collection
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    for out, message in ((full, "not empty"), (root / "ds", "inside the scanned folder")):
        code = main(["export", "-w", str(ws), "--as-dataset", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and not (root / "ds").exists()


def test_as_folders_or_as_dataset_one_of_them(collection, tmp_path, capsys):
    _root, ws = collection
    assert main(["export", "-w", str(ws)]) == 2
    assert "one of --as-folders" in capsys.readouterr().err


def test_a_failure_midway_leaves_nothing(collection, tmp_path, monkeypatch):
    _root, ws = collection
    from imgatlas.export import _dataset

    calls = {"n": 0}
    real = _dataset.place

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise ConfigError("the disk said no")
        return real(*a, **k)

    monkeypatch.setattr(_dataset, "place", failing)
    with pytest.raises(ConfigError):
        api.export_dataset(ws, tmp_path / "ds", mode="copy")
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds*"))


def test_split_shares():
    assert parse_split("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    assert whole_counts(10, (0.7, 0.15, 0.15)).tolist() == [7, 2, 1]
    assert whole_counts(3, (0.98, 0.01, 0.01)).tolist() == [1, 1, 1]
    assert whole_counts(101, (0.5, 0.5)).sum() == 101


def test_assign_splits_keeps_groups_whole_and_shares_close():
    rng = np.random.default_rng(0)
    groups, labels, i = [], {}, 0
    for label in "abc":
        for _ in range(80):
            size = int(rng.choice([1, 1, 1, 2, 3]))
            groups.append(list(range(i, i + size)))
            labels.update((j, label) for j in range(i, i + size))
            i += size
    shares = (0.7, 0.15, 0.15)
    split, notes = assign_splits(groups, labels, shares, seed=1)
    assert not notes and set(split) == set(labels)
    assert all(len({split[j] for j in g}) == 1 for g in groups)
    for label in "abc":
        mine = [split[j] for j in labels if labels[j] == label]
        got = np.bincount(mine, minlength=3) / len(mine)
        assert np.abs(got - shares).max() < 0.03
    again, _ = assign_splits(groups, labels, shares, seed=1)
    assert again == split


def test_hugging_face_datasets_reads_the_export(collection, tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    _root, ws = collection
    res = api.export_dataset(ws, tmp_path / "ds", split="0.5,0.25,0.25")
    ds = load_dataset("imagefolder", data_dir=str(tmp_path / "ds"),
                      cache_dir=str(tmp_path / "hf-cache"))
    assert {k: ds[k].num_rows for k in ds} == {"train": res["splits"]["train"],
                                              "validation": res["splits"]["val"],
                                              "test": res["splits"]["test"]}
    assert ds["train"].features["label"].names == sorted(res["labels"])
