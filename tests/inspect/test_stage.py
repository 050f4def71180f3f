"""The inspect stage end to end on generated photos with planted copies, with the default
backbone: groups, keepers, flags, the JSON, incremental reruns, exclusion."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from conftest import write_scene
from imgatlas import api
from imgatlas.cli import main
from imgatlas.store import Workspace

COPIES = {  # file -> the original it copies
    "c0-half.jpg": "s0.jpg", "c1-q15.jpg": "s1.jpg", "c2-crop.jpg": "s2.jpg",
    "c3-bright.jpg": "s3.jpg", "c4-grey.jpg": "s4.jpg", "c5.png": "s5.jpg",
    "c6-same.jpg": "s6.jpg",
}


def planted(root: Path) -> Path:
    """Ten different scenes, a copy of each kind, and one picture per flag."""
    for k in range(10):
        write_scene(root / f"s{k}.jpg", seed=k, quality=92)
    im = [Image.open(root / f"s{k}.jpg").convert("RGB") for k in range(9)]
    im[0].resize((160, 120), Image.BICUBIC).save(root / "c0-half.jpg", quality=90)
    im[1].save(root / "c1-q15.jpg", quality=15)
    im[2].crop((10, 8, 310, 233)).save(root / "c2-crop.jpg", quality=90)
    ImageEnhance.Brightness(im[3]).enhance(1.3).save(root / "c3-bright.jpg", quality=90)
    im[4].convert("L").convert("RGB").save(root / "c4-grey.jpg", quality=90)
    im[5].save(root / "c5.png")
    shutil.copyfile(root / "s6.jpg", root / "c6-same.jpg")
    im[7].filter(ImageFilter.GaussianBlur(5)).save(root / "blurred.jpg", quality=90)
    ImageEnhance.Brightness(im[8]).enhance(0.07).save(root / "dark.jpg", quality=90)
    Image.new("RGB", (320, 240), (128, 126, 130)).save(root / "blank.jpg", quality=90)
    write_scene(root / "tiny.png", 30, 22, seed=20)
    write_scene(root / "strip.jpg", 960, 110, seed=21, quality=90)
    yy, xx = np.mgrid[0:240, 0:320]
    sky = np.stack([90 + 0.3 * yy, 140 + 0.2 * yy, 230 + 0 * xx], -1).astype(np.uint8)
    Image.fromarray(sky).save(root / "sky.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def inspected(tmp_path_factory, cache_dir):
    root = planted(tmp_path_factory.mktemp("inspect") / "photos")
    ws = root.parent / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    return root, ws, api.inspect(ws)


def _names(paths: list[str]) -> set[str]:
    return {os.path.basename(p) for p in paths}


def test_every_planted_copy_is_grouped_with_its_original_and_nothing_else(inspected):
    _, _, res = inspected
    groups = [_names([g["keep"], *g["copies"]]) for g in res["near_duplicate_groups"]]
    for copy, original in COPIES.items():
        assert {copy, original} in [g & {copy, original} for g in groups], copy
    originals = {f"s{k}.jpg" for k in range(10)}
    for g in groups:  # different photos are never put together
        assert len(g & originals) <= 1, g
    # the original is kept over a smaller copy; the copy over nothing else
    half = next(g for g in res["near_duplicate_groups"] if "c0-half.jpg" in _names(g["copies"]))
    assert os.path.basename(half["keep"]) == "s0.jpg"
    assert all(0 <= g["similarity"] <= 1 for g in res["near_duplicate_groups"])
    same = next(g for g in res["near_duplicate_groups"] if "s6.jpg" in _names(
        [g["keep"], *g["copies"]]))
    assert same["similarity"] == 1.0 and same["evidence"] == ["same bytes"]


def test_flags_name_what_is_wrong_and_leave_the_rest(inspected):
    _, _, res = inspected
    by_flag: dict[str, set[str]] = {}
    for f in res["flags"]:
        by_flag.setdefault(f["flag"], set()).add(os.path.basename(f["path"]))
        assert f["reason"] and isinstance(f["score"], float)
    assert "blurred.jpg" in by_flag["blurry"]
    assert not by_flag["blurry"] & ({f"s{k}.jpg" for k in range(10)} | {"sky.jpg"})
    assert by_flag["dark"] == {"dark.jpg"}
    assert by_flag["low_information"] == {"blank.jpg"}
    assert "tiny.png" in by_flag["tiny"]
    assert by_flag["odd_aspect"] == {"strip.jpg"}
    assert "c4-grey.jpg" in by_flag["grayscale"]
    assert res["counts"]["dark"] == 1
    assert res["counts"]["near_duplicate_copies"] >= len(COPIES)


def test_the_json_and_the_run_record(inspected, capsys):
    root, ws, _ = inspected
    assert main(["inspect", "--workspace", str(ws), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"near_duplicate_groups", "flags", "counts"} <= set(out)
    g = out["near_duplicate_groups"][0]
    assert {"keep", "copies", "similarity"} <= set(g)
    assert {"id", "path", "flag", "score", "reason"} <= set(out["flags"][0])
    assert out["run"]["n_compared"] == 0  # nothing new since the fixture's inspection
    runs = api.runs(ws, "inspect")
    assert runs[-1]["status"] == "done" and runs[-1]["results"]["counts"]


def test_a_rerun_compares_only_what_is_new(tmp_path, cache_dir):
    root = tmp_path / "photos"
    for k in range(6):
        write_scene(root / f"s{k}.jpg", seed=k, quality=92)
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    first = api.inspect(ws)
    assert first["run"]["n_compared"] == 6 and first["counts"]["near_duplicate_groups"] == 0
    Image.open(root / "s2.jpg").resize((160, 120)).save(root / "s2-small.jpg", quality=85)
    write_scene(root / "s9.jpg", seed=9, quality=92)
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    second = api.inspect(ws)
    assert second["run"]["n_compared"] == 2
    assert [_names([g["keep"], *g["copies"]]) for g in second["near_duplicate_groups"]] == [
        {"s2.jpg", "s2-small.jpg"}]
    # a file whose content changed is compared again, its old pairs forgotten
    write_scene(root / "s2-small.jpg", seed=50, quality=85)
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    third = api.inspect(ws)
    assert third["run"]["n_compared"] == 1
    assert third["near_duplicate_groups"] == []


def test_exclusion_leaves_copies_and_flagged_images_out(inspected, tmp_path):
    root, ws0, res = inspected
    ws = tmp_path / "ws"
    shutil.copytree(ws0, ws)
    n = api.status(ws)["usable"]
    copies = {i for g in res["near_duplicate_groups"] for i in g["copy_ids"]}
    dark = {f["id"] for f in res["flags"] if f["flag"] == "dark"}
    full = api.cluster(ws, k=3)
    assert full["n_images"] == n
    lean = api.cluster(ws, k=3, exclude=["duplicates"])
    assert lean["n_images"] == n - len(copies)
    both = api.cluster(ws, k=3, exclude=["duplicates", "dark"])
    assert both["n_images"] == n - len(copies | dark)
    assert api.cluster(ws, k=3, exclude=["dark"])["n_images"] == n - len(dark)
    assert api.runs(ws, "cluster")[-2]["params"]["exclude_flags"] == ["duplicates", "dark"]
    idx = api.build_index(ws, exclude="duplicates")
    assert idx["n"] == n - len(copies)
    from imgatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="Cannot exclude 'dupes'"):
        api.cluster(ws, k=3, exclude=["dupes"])
    assert main(["cluster", "--workspace", str(ws), "--k", "3", "--exclude", "nope"]) == 2


def test_exclusion_needs_an_inspection(tmp_path, cache_dir):
    root = tmp_path / "photos"
    for k in range(4):
        write_scene(root / f"s{k}.jpg", seed=k)
    api.scan(root, tmp_path / "ws")
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    from imgatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="needs an inspection first"):
        api.cluster(tmp_path / "ws", k=2, exclude=["blurry"])


def test_images_without_measures_are_measured_by_inspect(tmp_path, cache_dir):
    root = tmp_path / "photos"
    for k in range(4):
        write_scene(root / f"s{k}.jpg", seed=k)
    (root / "s0-copy.jpg").write_bytes((root / "s0.jpg").read_bytes())
    ws = tmp_path / "ws"
    api.scan(root, ws)
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import embed_workspace

    with Workspace.open(ws, write=True) as w:  # as an older imgatlas (or Ray) left it
        embed_workspace(w, create_backbone("test_tiny", cache_dir=cache_dir),
                        measure_pixels=False)
    res = api.inspect(ws)
    assert res["run"]["n_measured"] == 5
    assert [_names([g["keep"], *g["copies"]]) for g in res["near_duplicate_groups"]] == [
        {"s0.jpg", "s0-copy.jpg"}]


def test_an_image_that_no_longer_decodes_is_recorded_and_the_rest_goes_on(tmp_path,
                                                                          cache_dir):
    root = tmp_path / "photos"
    for k in range(4):
        write_scene(root / f"s{k}.jpg", seed=k)
    ws = tmp_path / "ws"
    api.scan(root, ws)
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import embed_workspace

    with Workspace.open(ws, write=True) as w:
        embed_workspace(w, create_backbone("test_tiny", cache_dir=cache_dir),
                        measure_pixels=False)
    with open(root / "s1.jpg", "r+b") as f:  # damaged after scan and embed, same size
        f.seek(200)
        f.write(b"\0" * 2000)
    res = api.inspect(ws)
    assert res["run"]["n_measured"] == 3
    failed = api.status(ws)["failed"]
    assert [os.path.basename(f["path"]) for f in failed] == ["s1.jpg"]
