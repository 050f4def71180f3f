from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest

from conftest import set_schema_version
from imgatlas import api
from imgatlas.errors import WorkspaceError, WorkspaceLocked
from imgatlas.store import SCHEMA_VERSION, Workspace


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with Workspace.open(tmp_path / "ws", create=True, write=True, purpose="embed"):
        with pytest.raises(WorkspaceLocked, match=r"in use by another imgatlas process \(pid"):
            Workspace.open(tmp_path / "ws", write=True)
        # readers are never blocked
        with Workspace.open(tmp_path / "ws") as reader:
            assert reader.status_counts() == {}
    with Workspace.open(tmp_path / "ws", write=True):  # released on close
        pass


def test_newer_workspace_is_refused(tmp_path):
    with Workspace.open(tmp_path / "ws", create=True, write=True):
        pass
    set_schema_version(tmp_path / "ws", SCHEMA_VERSION + 1)
    with pytest.raises(WorkspaceError, match="newer than this imgatlas"):
        Workspace.open(tmp_path / "ws")


def test_damaged_catalog_is_a_clear_error(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "catalog.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(WorkspaceError, match="damaged|not an imgatlas"):
        Workspace.open(tmp_path / "ws")


def test_foreign_sqlite_file_is_refused(tmp_path):
    (tmp_path / "ws").mkdir()
    con = sqlite3.connect(tmp_path / "ws" / "catalog.sqlite")
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match="not an imgatlas catalog"):
        Workspace.open(tmp_path / "ws")


def test_missing_workspace(tmp_path):
    with pytest.raises(WorkspaceError, match="No workspace"):
        api.status(tmp_path / "none")


def test_disk_full_while_embedding_leaves_a_valid_workspace(image_dir, tmp_path, cache_dir,
                                                            monkeypatch):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(WorkspaceError, match="Disk full"):
        api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    monkeypatch.undo()
    st = api.status(ws)
    assert st["usable"] == 12
    res = api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    assert res["embedded"] == 12
    with Workspace.open(ws) as w:
        runs = w.runs("embed")
    assert [r["status"] for r in runs] == ["failed", "done"]
    assert "Disk full" in runs[0]["error"]


def test_feature_rows_align_with_ids(image_dir, tmp_path, cache_dir):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    ids, X, rows = api.load_features(ws)
    assert X.shape == (12, 16) and X.dtype == np.float32
    assert [r["id"] for r in rows] == ids.tolist()
    assert {r["label"] for r in rows} == {"cats", "dogs", "birds"}


def test_reading_in_chunks_reads_the_same_rows_and_looks_up_the_usable_once(
        image_dir, tmp_path, cache_dir, monkeypatch):
    ws = tmp_path / "ws"
    api.scan(image_dir, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    with Workspace.open(ws) as w:
        store = w.pick_store(None)
        ids, X = store.read()
        calls = []
        real = type(store).usable_ids
        monkeypatch.setattr(type(store), "usable_ids",
                            lambda self: calls.append(1) or real(self))
        wanted = np.concatenate([ids[::2], [10_000]])  # one id that has no vector
        parts = list(store.read_chunks(wanted, chunk=4))
    assert calls == [1] and [len(p) for p, _ in parts] == [4, 2]
    assert np.array_equal(np.concatenate([p for p, _ in parts]), ids[::2])
    assert np.array_equal(np.concatenate([x for _, x in parts]), X[::2])


@pytest.mark.parametrize("lookups", [20_000, 2])
def test_tags_as_arrays_are_the_tags(tmp_path, image_dir, monkeypatch, lookups):
    from imgatlas.store import _tags

    monkeypatch.setattr(_tags, "_LOOKUPS", lookups)  # 2: the whole table read and filtered
    api.scan(image_dir, tmp_path / "ws")
    rng = np.random.default_rng(0)
    with Workspace.open(tmp_path / "ws", write=True) as w:
        ids = [r.id for r in w.images()][:6]
        rows = [(i, rng.integers(0, 1000, 10).astype(np.int16),
                 rng.random(10).astype(np.float32)) for i in ids[::-1]]
        w.record_tags("s", rows)
        w.record_tags("other", rows[:1])
        got, classes, probs = w.tag_arrays("s", ids[1:4] + [999])
        as_dict = w.tags("s", ids[1:4] + [999])
        everything = w.tag_arrays("s")[0]
    assert got.tolist() == sorted(ids[1:4]) == sorted(as_dict)
    for i, c, p in zip(got.tolist(), classes, probs, strict=True):
        assert np.array_equal(c, as_dict[i][0]) and np.array_equal(p, as_dict[i][1])
    assert classes.dtype == np.int64 and probs.dtype == np.float32
    assert everything.tolist() == sorted(ids)
