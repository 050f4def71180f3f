from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import write_image
from imgatlas import api
from imgatlas.backbones import create_backbone
from imgatlas.cli import main
from imgatlas.embed._ray import SHARD_DIR, ShardEmbedder, shards
from imgatlas.embed._workspace import plan
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace


def _corpus(root, n=30):
    for i in range(n):
        write_image(root / f"g{i % 3}" / f"{i}.png", w=40 + i, h=36, seed=i)
    write_image(root / "g0" / "copy.png", w=40, h=36, seed=0)  # an exact duplicate of 0.png
    return root


def test_ray_gives_the_local_features_and_ids(ray_cluster, tmp_path, cache_dir):
    src = _corpus(tmp_path / "img", 12)
    api.scan(src, tmp_path / "local")
    api.scan(src, tmp_path / "ray")
    api.embed(tmp_path / "local", cache_dir=cache_dir)
    res = api.embed(tmp_path / "ray", cache_dir=cache_dir, engine="ray", num_workers=2)
    assert (res["embedded"], res["failed"]) == (13, 0)
    ids_l, X_l, _ = api.load_features(tmp_path / "local")
    ids_r, X_r, _ = api.load_features(tmp_path / "ray")
    assert (ids_l == ids_r).all()
    cos = (X_l * X_r).sum(1) / np.linalg.norm(X_l, axis=1) / np.linalg.norm(X_r, axis=1)
    assert cos.min() >= 0.9999
    assert not any((tmp_path / "ray" / SHARD_DIR).rglob("*.npz"))  # all merged
    again = api.embed(tmp_path / "ray", cache_dir=cache_dir, engine="ray")
    assert (again["embedded"], again["already_done"]) == (0, 13)


def test_ray_records_broken_files_like_local(ray_cluster, tmp_path, cache_dir):
    src = _corpus(tmp_path / "img", 9)
    api.scan(src, tmp_path / "ws")
    (src / "g1" / "4.png").write_bytes(b"broken after the scan")
    res = api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir,
                    engine="ray")
    assert (res["embedded"], res["failed"]) == (9, 1)
    st = api.status(tmp_path / "ws")
    assert st["by_status"] == {"ok": 9, "decode_error": 1}
    assert st["failed"][0]["path"].endswith("4.png") and st["failed"][0]["reason"]


def test_a_finished_shard_of_a_killed_run_is_kept(ray_cluster, tmp_path, cache_dir):
    """A killed run leaves finished shard files behind; the next run merges them as they are
    (here one shard is planted with doubled vectors to prove it is not recomputed)."""
    src = _corpus(tmp_path / "img", 30)
    ws = tmp_path / "ws"
    api.scan(src, ws)
    bb = create_backbone("test_tiny", cache_dir=cache_dir)
    with Workspace.open(ws, write=True) as w:
        p = plan(w, bb)
        first = shards(p, 8)
        assert [n for n, _ in first] == [n for n, _ in shards(plan(w, bb), 8)]  # determined
        folder = ws / SHARD_DIR / p.key
        folder.mkdir(parents=True)
        name, part = first[0]
        ShardEmbedder(bb, str(folder), 4, 1, None)(
            {"shard": np.array([name]),
             "items": np.array([__import__("json").dumps([(s, q.hex()) for s, q in part])])})
    planted = folder / f"{name}.npz"
    with np.load(planted) as z:
        data = dict(z)
    data["X"] = data["X"] * 2
    np.savez(planted, **data)
    res = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir, engine="ray")
    assert res["embedded"] == 31 and not planted.exists()
    api.scan(src, tmp_path / "plain")
    api.embed(tmp_path / "plain", backbone="test_tiny", cache_dir=cache_dir)
    ids, X, rows = api.load_features(ws)
    ids0, X0, _ = api.load_features(tmp_path / "plain")
    assert (ids == ids0).all()
    in_planted = np.isin(ids, [i for s, _ in part for i in p.by_sha[s]])
    assert in_planted.sum() >= 8
    np.testing.assert_allclose(X[in_planted], 2 * X0[in_planted], rtol=1e-6)
    np.testing.assert_allclose(X[~in_planted], X0[~in_planted], rtol=1e-6)


def test_without_ray_the_engine_names_the_extra(tmp_path, cache_dir, monkeypatch, capsys):
    src = _corpus(tmp_path / "img", 3)
    api.scan(src, tmp_path / "ws")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"imgatlas\[ray\]"):
        api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir, engine="ray")
    code = main(["embed", "--workspace", str(tmp_path / "ws"), "--engine", "ray",
                 "--backbone", "test_tiny", "--cache-dir", str(cache_dir)])
    err = capsys.readouterr().err
    assert code != 0 and "imgatlas[ray]" in err and len(err.strip().splitlines()) == 1


def test_bad_engine_options_are_one_line_errors(tmp_path, cache_dir):
    src = _corpus(tmp_path / "img", 3)
    api.scan(src, tmp_path / "ws")
    with pytest.raises(ConfigError, match="engine must be one of"):
        api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir, engine="spark")
