"""The whole job on a folder whose names are hostile: not UTF-8, markup, very long, full of
spaces, a newline. Every output must survive them: terminal, JSON, CSV, Parquet, HTML."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from imgatlas.cli import main

NAMES = [
    b"caf\xe9 cr\xe8me.png",  # Latin-1, not UTF-8
    b"<img src=x onerror=alert(1)>.png",
    b"   spaced   out   .png",
    b"line\nbreak.png",
    ("long-" * 48).encode() + b".png",  # 245 bytes, near the 255-byte limit
    "ok-\u00e9t\u00e9.png".encode(),  # valid UTF-8
]
FOLDERS = [b"d\xe9j\xe0 vu", b"<svg onload=alert(3)>", b"plain"]


@pytest.fixture()
def awkward_dir(tmp_path):
    root = os.fsencode(tmp_path / "awkward")
    rng = np.random.default_rng(0)
    for f, folder in enumerate(FOLDERS):
        os.makedirs(os.path.join(root, folder))
        for name in NAMES:
            a = np.clip(np.array([(200, 30, 30), (30, 200, 30), (30, 30, 200)][f])
                        + rng.normal(0, 10, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(os.path.join(root, folder, name), format="PNG")
    with open(os.path.join(root, b"plain", b"broken \xff.png"), "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_whole_job_survives_awkward_names(awkward_dir, tmp_path, cache_dir, capsys,
                                          monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache_dir))
    ws = str(tmp_path / "ws")
    argv = ["run", os.fsdecode(awkward_dir), "-w", ws, "--labels-from-folders",
            "--backbone", "test_tiny", "--k", "3"]
    assert main(argv + ["--json"]) == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["scan"]["found"] == len(NAMES) * len(FOLDERS) + 1
    assert res["status"]["usable"] == len(NAMES) * len(FOLDERS)
    assert res["evaluation"]["acc"] == 1.0
    (failed,) = res["status"]["failed"]
    assert failed["path"].endswith("broken \\xff.png")  # printable, bytes escaped
    assert main(argv) == 0  # human output, reused run
    out = capsys.readouterr().out
    assert "reused" in out and "\udce9" not in out

    assert main(["status", "-w", ws]) == 0
    assert "broken \\xff.png" in capsys.readouterr().out
    st = json.loads(_cli(capsys, "status", "-w", ws, "--json"))
    assert st["by_status"]["ok"] == len(NAMES) * len(FOLDERS) and failed["reason"]

    # exports
    for out_name in ("c.csv", "c.parquet"):
        assert main(["export-clusters", "-w", ws, "--out", str(tmp_path / out_name)]) == 0
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    paths = {r["path"] for r in rows}
    assert any(p.endswith("caf\\xe9 cr\\xe8me.png") for p in paths)
    assert any("line\nbreak.png" in p for p in paths)  # the newline survives, quoted
    assert {r["label"] for r in rows} == {"d\\xe9j\\xe0 vu", "<svg onload=alert(3)>",
                                          "plain"}
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "c.parquet").num_rows == len(rows)
    assert main(["export-features", "-w", ws, "--out", str(tmp_path / "f.npy")]) == 0

    # the report: every page is valid UTF-8, no markup from the data survives
    report = tmp_path / "ws" / "report"
    for page in report.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<img src=x onerror" not in text and "<svg onload=alert(3)>" not in text
    index = (report / "index.html").read_text(encoding="utf-8")
    assert "caf\\xe9 cr\\xe8me.png" in index and "d\\xe9j\\xe0 vu" in index

    # search with an awkwardly named query file, by path and by id
    assert main(["index", "-w", ws, "--codes", "float"]) == 0
    capsys.readouterr()
    query = os.path.join(awkward_dir, FOLDERS[0], NAMES[0])
    assert main(["search", "-w", ws, os.fsdecode(query), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "caf\\xe9 cr\\xe8me.png" in out
    hits = json.loads(_cli(capsys, "search", "-w", ws, os.fsdecode(query), "--json"))
    assert hits[0]["results"][0]["exact"] and hits[0]["query"].endswith("cr\\xe8me.png")


def _cli(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_the_dataset_export_and_label_spreading_survive_awkward_names(
        awkward_dir, tmp_path, cache_dir, capsys, monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache_dir))
    ws = str(tmp_path / "ws")
    assert main(["run", os.fsdecode(awkward_dir), "-w", ws, "--labels-from-folders",
                 "--backbone", "test_tiny", "--k", "3", "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "ds"
    res = json.loads(_cli(capsys, "export", "-w", ws, "--as-dataset", str(out), "--split",
                          "0.5,0.5", "--copy", "--exclude", "none", "--json"))
    assert sum(res["splits"].values()) == len(NAMES) * len(FOLDERS)
    for path in out.rglob("*"):  # every name written is valid UTF-8, without markup
        name = path.name
        name.encode("utf-8")
        assert "<" not in name and "\n" not in name
    assert set(res["labels"]) == {"d\\xe9j\\xe0 vu", "<svg onload=alert(3)>", "plain"}
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert any("line\nbreak.png" in r["source_path"] for r in rows)
    text = _cli(capsys, "export", "-w", ws, "--as-dataset", str(tmp_path / "ds2"),
                "--exclude", "none")
    assert "d\\xe9j\\xe0 vu" in text and "\udce9" not in text
    # everything set apart by inspect: one line saying what and how to keep it
    assert main(["export", "-w", ws, "--as-dataset", str(tmp_path / "ds3")]) == 2
    err = capsys.readouterr().err
    assert "No labelled image is left" in err and "--exclude none" in err
    spread = json.loads(_cli(capsys, "label-propagate", "-w", ws, "--labels", "folders",
                             "--json"))
    assert spread["n_images"] == len(NAMES) * len(FOLDERS)
