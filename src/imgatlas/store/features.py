"""Feature matrices: one raw file per backbone + preprocessing.

Row ``image_id - 1`` of ``features/<key>.bin`` holds that image's vector. A row counts only
once the ``embedded`` table says so, and that row is inserted in the same transaction that
follows the (synced) write of the vector. A process killed at any moment therefore leaves
rows that are either complete and recorded, or unrecorded and recomputed on the next run:
never half-written rows that are believed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgatlas.errors import WorkspaceError
from imgatlas.store._io import io_errors

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace


class FeatureStore:
    def __init__(self, ws: Workspace, key: str, backbone: str, cfg: dict[str, Any],
                 dim: int, dtype: str) -> None:
        self.ws = ws
        self.key = key
        self.backbone = backbone
        self.cfg = cfg
        self.dim = dim
        self.dtype = np.dtype(dtype)

    @property
    def path(self) -> Path:
        return self.ws.path / "features" / f"{self.key}.bin"

    # -- lookup ------------------------------------------------------------------------------
    @classmethod
    def ensure(cls, ws: Workspace, key: str, backbone: str, cfg: dict[str, Any],
               dim: int, dtype: str) -> FeatureStore:
        existing = cls.get(ws, key)
        if existing is not None:
            if existing.dim != dim or existing.dtype != np.dtype(dtype):
                raise WorkspaceError(
                    f"Feature store {key} holds {existing.dim}-d {existing.dtype} vectors, "
                    f"not {dim}-d {dtype}."
                )
            return existing
        with ws.transaction("registering a feature store"):
            ws._con.execute(
                "INSERT INTO stores(key, backbone, cfg, dim, dtype, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (key, backbone, json.dumps(cfg, sort_keys=True), dim, str(np.dtype(dtype)),
                 time.time()),
            )
        return cls(ws, key, backbone, cfg, dim, dtype)

    @classmethod
    def get(cls, ws: Workspace, key: str) -> FeatureStore | None:
        row = ws._con.execute(
            "SELECT key, backbone, cfg, dim, dtype FROM stores WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        return cls(ws, row[0], row[1], json.loads(row[2]), int(row[3]), row[4])

    @classmethod
    def all(cls, ws: Workspace) -> list[FeatureStore]:
        keys = [r[0] for r in ws._con.execute("SELECT key FROM stores ORDER BY created_at")]
        return [s for k in keys if (s := cls.get(ws, k)) is not None]

    # -- state -------------------------------------------------------------------------------
    def n_usable(self) -> int:
        """How many usable images (status ok) have a stored vector."""
        return int(self.ws._con.execute(
            "SELECT count(*) FROM embedded e JOIN images i ON i.id=e.image_id "
            "WHERE e.store=? AND i.status='ok'", (self.key,)).fetchone()[0])

    def done_ids(self) -> np.ndarray:
        """Ids of the images whose vector is stored, whatever their current status."""
        rows = self.ws._con.execute(
            "SELECT image_id FROM embedded WHERE store=? ORDER BY image_id", (self.key,)
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- writing -----------------------------------------------------------------------------
    def open_writer(self, max_id: int) -> _Writer:
        return _Writer(self, max_id)

    # -- reading -----------------------------------------------------------------------------
    def read(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, X)`` for the usable images (status ok) whose vectors are stored.

        ``X`` is a fresh array, ``ids`` ascending. Passing ``ids`` restricts to those.
        """
        have = self._usable(ids)
        return have, self._rows(have)

    def read_chunks(self, ids: np.ndarray | None = None, chunk: int = 8192
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`read` in pieces of at most ``chunk`` images (bounded memory), the usable
        images looked up once (at a million, once per piece cost more than the reading)."""
        have = self._usable(ids)
        for start in range(0, len(have), chunk):
            part = have[start:start + chunk]
            yield part, self._rows(part)

    def _usable(self, ids: np.ndarray | None) -> np.ndarray:
        if ids is None:
            return self.usable_ids()
        ids = np.asarray(ids, dtype=np.int64)
        if not ids.size:  # nothing asked: no need to look the usable ones up (1 s at 1M)
            return ids
        return np.intersect1d(self.usable_ids(), ids)

    def _rows(self, have: np.ndarray) -> np.ndarray:
        if have.size == 0:
            return np.empty((0, self.dim), dtype=self.dtype)
        if not self.path.exists():
            raise WorkspaceError(
                f"Feature file {self.path} is missing; run 'imgatlas embed' again.")
        return read_rows(self.path, self.dtype, self.dim, have - 1)

    def usable_ids(self) -> np.ndarray:
        """Ascending ids of the usable images (status ok) whose vectors are stored."""
        q = ("SELECT e.image_id FROM embedded e JOIN images i ON i.id = e.image_id "
             "WHERE e.store=? AND i.status='ok' ORDER BY e.image_id")
        rows = self.ws._con.execute(q, (self.key,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


READ_CHUNK = 64 << 20  # bytes read per call: bounded, and no second copy of a large run


def read_rows(path: Path | str, dtype: Any, dim: int, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (ascending, 0-based) of a raw feature file, read straight into the
    result: consecutive rows in one read. Not through a memory map: a map of a 5 GB file
    touched at 100k scattered rows pulls most of the file into the process's resident set
    (the kernel maps neighbouring pages on every fault), 4.5 GB for a 0.5 GB sample."""
    dtype = np.dtype(dtype)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), dim), dtype=dtype)
    if not len(rows):
        return out
    row_bytes = dim * dtype.itemsize
    flat = out.reshape(-1).view(np.uint8)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(rows)]])
    with io_errors(f"reading {path}"), open(path, "rb", buffering=0) as f:
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            pos, end = a * row_bytes, b * row_bytes
            f.seek(int(rows[a]) * row_bytes)
            while pos < end:
                got = f.readinto(flat[pos:min(end, pos + READ_CHUNK)])
                if not got:
                    raise WorkspaceError(f"Feature file {path} is shorter than its records; "
                                         "run 'imgatlas embed' again.")
                pos += got
    return out


class _Writer:
    """Writes rows with ``pwrite`` into a pre-allocated file, then records them."""

    def __init__(self, store: FeatureStore, max_id: int) -> None:
        self.store = store
        self.row_bytes = store.dim * store.dtype.itemsize
        with io_errors(f"opening {store.path}"):
            self.fd = os.open(store.path, os.O_RDWR | os.O_CREAT, 0o644)
            self.reserve(max_id)

    def reserve(self, max_id: int) -> None:
        # posix_fallocate fails with ENOSPC now, instead of a sparse file failing later.
        need = max_id * self.row_bytes
        with io_errors(f"allocating {self.store.path}"):
            if os.fstat(self.fd).st_size < need:
                os.posix_fallocate(self.fd, 0, need)

    def write(self, ids: np.ndarray, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=self.store.dtype)
        if X.shape != (len(ids), self.store.dim):
            raise ValueError(f"expected {(len(ids), self.store.dim)} features, got {X.shape}")
        with io_errors(f"writing {self.store.path}"):
            for i, row in zip(ids, X, strict=True):
                os.pwrite(self.fd, row.tobytes(), (int(i) - 1) * self.row_bytes)
            os.fdatasync(self.fd)
        with self.store.ws.transaction("recording embedded rows") as con:
            con.executemany(
                "INSERT OR REPLACE INTO embedded(store, image_id) VALUES (?, ?)",
                [(self.store.key, int(i)) for i in ids],
            )

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
