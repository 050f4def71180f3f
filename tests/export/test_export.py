"""export --as-folders: every usable image once, the source untouched, names safe on every
system, clashes numbered, refusals in one line, reruns idempotent."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import scene, write_scene
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError
from imgatlas.export import MANIFEST


def tree_state(root: Path) -> dict[bytes, tuple]:
    """Every entry under ``root`` with its type, bytes and times: the source must not move."""
    out = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture()
def organised(tmp_path, cache_dir):
    """A source with awkward names, an exact copy, a dark picture, a broken file; scanned,
    embedded, inspected and clustered."""
    src = tmp_path / "photos"
    write_scene(src / "trip" / "beach.jpg", seed=1, quality=90)
    write_scene(src / "home" / "beach.jpg", seed=2, quality=90)  # same name, other folder
    write_scene(src / "home" / "Beach.JPG", seed=3, quality=90)  # differs only in case
    write_scene(src / "home" / "a:b?c.jpg", seed=4, quality=90)  # unsafe on Windows
    write_scene(src / "home" / "CON.jpg", seed=5, quality=90)  # a Windows device name
    write_scene(Path(os.fsdecode(os.path.join(os.fsencode(src / "home"), b"caf\xe9.jpg"))),
                seed=6, quality=90)  # not UTF-8
    for k in range(7, 14):
        write_scene(src / "more" / f"m{k}.jpg", seed=k, quality=90)
    (src / "more" / "m7-copy.jpg").write_bytes((src / "more" / "m7.jpg").read_bytes())
    Image.fromarray((scene(seed=30) * 0.05).astype(np.uint8)).save(src / "more" / "dark.jpg")
    (src / "more" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    ws = tmp_path / "ws"
    api.scan(src, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.inspect(ws)
    run = api.cluster(ws, k=3)
    return src, ws, run["run_id"]


def manifest(out: Path) -> list[dict[str, str]]:
    with open(out / MANIFEST, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_usable_image_once_and_the_source_untouched(organised, tmp_path):
    src, ws, run = organised
    before = tree_state(src)
    out = tmp_path / "out"
    res = api.export(ws, out, mode="copy")
    assert tree_state(src) == before  # byte for byte, times included
    rows = manifest(out)
    usable = api.status(ws)["usable"]
    assert len(rows) == usable == len({r["id"] for r in rows}) == res["images"]
    assert sum(res["folders"].values()) == usable
    targets = [r["target_path"] for r in rows]
    assert len(set(t.lower() for t in targets)) == len(targets)  # no clash, even in case
    for r in rows:
        p = out / r["target_path"]
        assert p.is_file() and not p.is_symlink()
        assert hashlib.sha256(p.read_bytes()).hexdigest() == r["sha256"]
        with Image.open(p) as im:  # the real size, not the draft decode's
            assert (int(r["width"]), int(r["height"])) == im.size
    assert not any("broken" in r["source_path"] for r in rows)
    by_source = {os.path.basename(r["source_path"]): r for r in rows}
    assert by_source["m7-copy.jpg"]["target_path"].startswith("_near-duplicates/") or \
        by_source["m7.jpg"]["target_path"].startswith("_near-duplicates/")
    assert by_source["dark.jpg"]["target_path"] == "_review/dark/dark.jpg"
    assert by_source["dark.jpg"]["flags"] == "dark"
    assert "caf\\xe9.jpg" in by_source  # the printable source path
    assert by_source["caf\\xe9.jpg"]["target_path"].endswith("/caf%E9.jpg")
    assert by_source["a:b?c.jpg"]["target_path"].endswith("/a_b_c.jpg")
    assert by_source["CON.jpg"]["target_path"].endswith("/_CON.jpg")
    for r in rows:
        if r["cluster"] and not r["target_path"].startswith("_"):
            assert r["target_path"].startswith(f"cluster-{r['cluster']}/")
            assert r["cluster_name"] == f"cluster-{r['cluster']}"


def test_modes_link_hardlink_copy(organised, tmp_path):
    src, ws, _ = organised
    for mode in ("link", "hardlink", "copy"):
        out = tmp_path / mode
        api.export(ws, out, mode=mode)
        row = manifest(out)[0]
        target = out / row["target_path"]
        source = next(p for p in src.rglob("*") if p.is_file() and
                      hashlib.sha256(p.read_bytes()).hexdigest() == row["sha256"])
        if mode == "link":
            assert target.is_symlink() and target.resolve() == source.resolve()
        elif mode == "hardlink":
            assert os.stat(target).st_ino == os.stat(source).st_ino
        else:
            assert not target.is_symlink() and os.stat(target).st_ino != os.stat(source).st_ino


def test_rerun_is_idempotent_and_follows_renames(organised, tmp_path):
    _, ws, run = organised
    out = tmp_path / "out"
    api.export(ws, out)
    first = manifest(out)
    stamps = {p: os.lstat(p).st_mtime_ns for p in out.rglob("*") if p.is_symlink()}
    api.export(ws, out)
    assert manifest(out) == first
    assert {p: os.lstat(p).st_mtime_ns for p in out.rglob("*") if p.is_symlink()} == stamps
    cluster = int(next(r["cluster"] for r in first if r["target_path"].startswith("cluster-")))
    api.name_cluster(ws, run, cluster, "Beach days: 2024/25")
    res = api.export(ws, out)
    rows = manifest(out)
    assert "Beach days_ 2024_25" in res["folders"]
    assert not (out / f"cluster-{cluster}").exists()  # the old folder went with its files
    assert len(rows) == len(first)
    assert all((out / r["target_path"]).is_symlink() for r in rows)


def test_two_clusters_of_one_name_get_their_own_folders(organised, tmp_path):
    _, ws, run = organised
    api.name_cluster(ws, run, 0, "same")
    api.name_cluster(ws, run, 1, "Same")
    res = api.export(ws, tmp_path / "out")
    assert {"same", "Same-2"} <= set(res["folders"])


def test_refusals_are_one_line(organised, tmp_path, capsys):
    src, ws, _ = organised
    for bad, why in [(src, "inside the scanned folder"),
                     (src / "trip" / "out", "inside the scanned folder"),
                     (src.parent, "holds the scanned folder"),
                     (ws / "out", "inside the workspace")]:
        with pytest.raises(ConfigError, match=why):
            api.export(ws, bad)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no manifest.csv"):
        api.export(ws, tmp_path / "busy")
    (tmp_path / "afile").write_text("x")
    assert main(["export", "--workspace", str(ws), "--as-folders", str(tmp_path / "afile")]) \
        == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert main(["export", "--workspace", str(ws), "--as-folders", str(tmp_path / "o"),
                 "--mode", "move"]) == 2
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_export_needs_a_clustering(tmp_path, cache_dir):
    write_scene(tmp_path / "p" / "a.jpg", seed=1)
    write_scene(tmp_path / "p" / "b.jpg", seed=2)
    api.scan(tmp_path / "p", tmp_path / "ws")
    with pytest.raises(ConfigError, match="no finished cluster run"):
        api.export(tmp_path / "ws", tmp_path / "out")


def test_cli_json(organised, tmp_path, capsys):
    _, ws, _ = organised
    assert main(["export", "--workspace", str(ws), "--as-folders", str(tmp_path / "o"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"out", "manifest", "folders"}
    assert Path(out["manifest"]).is_file()
    assert all(isinstance(n, int) for n in out["folders"].values())
