"""Leaky splits: near-duplicates across train/ and test/ folders found, reported on every
face, and left out of the later splits with --exclude leaks; --splits checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import write_scene
from imgatlas import api
from imgatlas.cli import main
from imgatlas.inspect import excluded_ids
from imgatlas.store import Workspace

LABELS = ("cat", "dog", "owl")


def split_collection(root: Path) -> dict[str, str]:
    """train/<label>/ and test/<label>/ of different scenes, with planted copies:
    ``{copy file: original file}`` (paths relative to ``root``); two cross the split."""
    seed = 0
    for label in LABELS:
        for split, n in (("train", 5), ("test", 2)):
            for j in range(n):
                write_scene(root / split / label / f"{label}{j}.jpg", seed=seed, quality=92)
                seed += 1
    planted = {
        "test/cat/copy-of-cat0.jpg": "train/cat/cat0.jpg",  # re-saved: a leak
        "test/dog/dog-again.jpg": "train/dog/dog1.jpg",  # exact: a leak
        "train/owl/owl0-twice.jpg": "train/owl/owl0.jpg",  # inside train: no leak
    }
    for copy, original in planted.items():
        if "again" in copy:
            shutil.copyfile(root / original, root / copy)
        else:
            Image.open(root / original).save(root / copy, quality=60)
    return planted


@pytest.fixture(scope="module")
def leaky(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("leaks") / "photos"
    planted = split_collection(root)
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    return root, ws, planted, api.inspect(ws, splits="train,test")


def test_leaks_are_the_copies_across_splits_only(leaky):
    root, _ws, planted, res = leaky
    found = {frozenset(Path(m).relative_to(root).as_posix() for m in lk["members"])
             for lk in res["leaks"]}
    want = {frozenset(p) for p in planted.items() if p[0].split("/")[0] != p[1].split("/")[0]}
    assert found == want and res["counts"]["leaks"] == 2
    for lk in res["leaks"]:
        assert lk["splits"] == ["train", "test"] and 0 < lk["similarity"] <= 1
    assert res["splits"] == ["train", "test"]


def test_exclude_leaks_leaves_out_the_copies_outside_the_first_split(leaky):
    root, ws, planted, res = leaky
    with Workspace.open(ws) as w:
        out = excluded_ids(w, ["leaks"])
        shown = {Path(r.display).relative_to(root).as_posix() for r in w.images()
                 if r.id in out}
    assert shown == {"test/cat/copy-of-cat0.jpg", "test/dog/dog-again.jpg"}


def test_a_later_inspection_keeps_the_splits(leaky):
    _root, ws, _planted, _res = leaky
    again = api.inspect(ws)
    assert again["splits"] == ["train", "test"] and again["counts"]["leaks"] == 2


def test_inspect_json_and_text_show_the_leaks(leaky, capsys):
    _root, ws, _planted, _res = leaky
    assert main(["inspect", "-w", str(ws), "--splits", "train,test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["leaks"]) == 2 and {"members", "splits", "similarity"} <= set(out["leaks"][0])
    assert main(["inspect", "-w", str(ws)]) == 0
    text = capsys.readouterr().out
    assert "leaks across train, test: 2 groups" in text and "test: " in text


@pytest.mark.parametrize("value, message", [
    ("train,val", "'val', which is not a top-level folder"),
    ("train", "two or more folders"),
    ("train,../x", "is not one"),
])
def test_bad_splits_are_one_line(leaky, capsys, value, message):
    _root, ws, _planted, _res = leaky
    code = main(["inspect", "-w", str(ws), "--splits", value])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_the_report_and_the_clean_page_show_the_leaks(leaky, tmp_path, cache_dir):
    _root, ws, _planted, _res = leaky
    api.cluster(ws, k=3)
    api.report(ws, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="leaks"' in html and "Leaks across splits: 2" in html
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from imgatlas.serve import create_app

    page = TestClient(create_app(ws, cache_dir=cache_dir)).get("/clean").text
    assert 'id="leaks"' in page and page.count('class="group leak"') == 2
    assert ">test</p>" in page and ">train</p>" in page
