from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import pattern, write_image
from imgatlas import api
from imgatlas.backbones import create_backbone
from imgatlas.embed import Embedder
from imgatlas.errors import DecodeError
from imgatlas.store import Workspace


def test_embed_then_nothing_left_to_do(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    first = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, batch_size=5)
    assert (first["embedded"], first["failed"]) == (12, 0)
    second = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    assert (second["embedded"], second["already_done"]) == (0, 12)


def test_batch_size_and_workers_do_not_change_values(image_dir, tmp_path, cache_dir):
    api.scan(image_dir, tmp_path / "a")
    api.scan(image_dir, tmp_path / "b")
    api.embed(tmp_path / "a", backbone="test_tiny", cache_dir=cache_dir, batch_size=1, workers=1)
    api.embed(tmp_path / "b", backbone="test_tiny", cache_dir=cache_dir, batch_size=64, workers=3)
    ia, Xa, _ = api.load_features(tmp_path / "a")
    ib, Xb, _ = api.load_features(tmp_path / "b")
    assert np.array_equal(ia, ib)
    np.testing.assert_allclose(Xa, Xb, rtol=0, atol=1e-6)


def test_duplicates_decoded_once_and_share_vectors(tmp_path, cache_dir):
    d = tmp_path / "in"
    write_image(d / "a.png", seed=1)
    write_image(d / "b.png", seed=2)
    (d / "a_copy.png").write_bytes((d / "a.png").read_bytes())
    api.scan(d, tmp_path / "ws")
    res = api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    assert res["embedded"] == 3 and res["unique_decoded"] == 2
    _, X, rows = api.load_features(tmp_path / "ws")
    by = {os.path.basename(r["path"]): x for r, x in zip(rows, X, strict=True)}
    assert np.array_equal(by["a.png"], by["a_copy.png"])
    assert not np.array_equal(by["a.png"], by["b.png"])


def test_file_that_breaks_after_scan_is_recorded_and_run_goes_on(image_dir, tmp_path,
                                                                 cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    victim = next(image_dir.glob("dogs/*.png"))
    victim.write_bytes(b"now garbage")
    res = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    assert (res["embedded"], res["failed"]) == (11, 1)
    st = api.status(ws)
    assert st["by_status"] == {"ok": 11, "decode_error": 1}
    assert st["failed"][0]["path"].endswith(victim.name)


def test_options_l2_and_float16(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    res = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, l2_normalize=True,
                    dtype="float16")
    assert res["store"].endswith("-l2-float16")
    _, raw, _ = api.load_features(ws, features=res["store"].replace("-l2-float16", "-float32"))
    _, X, _ = api.load_features(ws, features=res["store"])
    assert X.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(X.astype(np.float32), axis=1), 1, atol=2e-3)
    ref = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(X.astype(np.float32), ref, atol=2e-3)
    assert len(api.status(ws)["stores"]) == 2


def test_export_parquet_and_npy(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    ids, X, _ = api.load_features(ws)
    api.export_features(ws, tmp_path / "f.parquet")
    t = pq.read_table(tmp_path / "f.parquet")
    assert t.column_names == ["id", "path", "label", "features"]
    assert t.column("id").to_pylist() == ids.tolist()
    np.testing.assert_array_equal(np.array(t.column("features").to_pylist(), np.float32), X)
    res = api.export_features(ws, tmp_path / "f.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), X)
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0] == "row,id,path,label" and len(lines) == 13
    assert res["files"][1].endswith("f.csv")


def test_embedder_on_loose_files(image_dir, cache_dir):
    e = Embedder(create_backbone("test_tiny", cache_dir=cache_dir), batch_size=4)
    paths = sorted(image_dir.rglob("*.png"))
    X = e.embed_files(paths)
    assert X.shape == (12, 16)
    np.testing.assert_allclose(e.embed_files(paths[3:4])[0], X[3], atol=1e-6)
    with pytest.raises(DecodeError, match="Cannot read"):
        e.embed_files([image_dir / "missing.png"])


def _heavy_corpus(d, n: int) -> None:
    """n distinct files that each take milliseconds to decode: one big PNG, each copy with a
    different trailing byte (ignored by decoders, so the content hash differs)."""
    d.mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(pattern(640, 640, seed=5)).save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    for k in range(n):
        (d / f"img_{k:04d}.png").write_bytes(data + k.to_bytes(2, "big"))


def _embed_cmd(ws, cache_dir):
    return [sys.executable, "-m", "imgatlas.cli", "embed", "--workspace", str(ws),
            "--backbone", "test_tiny", "--cache-dir", str(cache_dir), "--batch-size", "8",
            "--workers", "1", "--threads", "1", "--no-progress"]


def test_kill_9_mid_embed_then_resume_equals_uninterrupted_run(tmp_path, cache_dir):
    d = tmp_path / "in"
    n = 120
    _heavy_corpus(d, n)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    api.scan(d, killed)
    api.scan(d, clean)
    create_backbone("test_tiny", cache_dir=cache_dir).onnx_path()

    proc = subprocess.Popen(_embed_cmd(killed, cache_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    con = sqlite3.connect(killed / "catalog.sqlite", timeout=30)
    stored = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            stored = con.execute("SELECT count(*) FROM embedded").fetchone()[0]
        except sqlite3.OperationalError:
            stored = 0
        if stored >= 16:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = con.execute("SELECT count(*) FROM embedded").fetchone()[0]
    con.close()
    assert 0 < stored < n, f"the kill did not land mid-run ({stored} of {n} stored)"

    resumed = subprocess.run(_embed_cmd(killed, cache_dir), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    api.embed(clean, backbone="test_tiny", cache_dir=cache_dir, batch_size=8)

    ia, Xa, _ = api.load_features(killed)
    ib, Xb, _ = api.load_features(clean)
    assert np.array_equal(ia, ib) and len(ia) == n
    assert np.array_equal(Xa, Xb)  # bit-identical, row by row
    with Workspace.open(killed) as ws:
        n_rows = len(ws.pick_store().done_ids())
        statuses = [r["status"] for r in ws.runs("embed")]
    assert n_rows == n  # no duplicate or missing rows
    assert statuses == ["interrupted", "done"]
