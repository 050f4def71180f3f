"""Each image's top ImageNet classes, per feature store (they are computed from its
features): what names clusters and answers text searches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace


_LOOKUPS = 20_000  # more ids than this: read the store's tags whole and filter


class TagsMixin:
    """The ``image_tags`` table."""

    _con: Any

    def record_tags(self: Workspace, store: str,
                    rows: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """``(image id, class indices (int16), probabilities (float32))`` per image."""
        with self.transaction("recording tags") as con:
            con.executemany(
                "INSERT OR REPLACE INTO image_tags(store, image_id, classes, probs) "
                "VALUES (?,?,?,?)",
                [(store, int(i), np.asarray(c, "<i2").tobytes(),
                  np.asarray(p, "<f4").tobytes()) for i, c, p in rows])

    def tags(self: Workspace, store: str, ids: Iterable[int] | None = None
             ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{image id: (classes, probabilities)}`` recorded for ``store`` (of ``ids``)."""
        return {r[0]: (np.frombuffer(r[1], "<i2").astype(np.int64),
                       np.frombuffer(r[2], "<f4")) for r in self._tag_rows(store, ids)}

    def tag_arrays(self: Workspace, store: str, ids: Iterable[int] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids ascending, classes (n, k) int64, probabilities (n, k) float32)`` recorded
        for ``store`` (of ``ids``): :meth:`tags` as three arrays, decoded in one piece (a
        million images' tags in a second or two, not a dict of two million small arrays)."""
        rows = sorted(self._tag_rows(store, ids))
        if not rows:
            return np.empty(0, np.int64), np.empty((0, 0), np.int64), np.empty((0, 0), "<f4")
        got = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        classes = np.frombuffer(b"".join(r[1] for r in rows), "<i2").reshape(len(rows), -1)
        probs = np.frombuffer(b"".join(r[2] for r in rows), "<f4").reshape(len(rows), -1)
        return got, classes.astype(np.int64), probs.copy()

    def _tag_rows(self: Workspace, store: str, ids: Iterable[int] | None
                  ) -> list[tuple[int, bytes, bytes]]:
        q = "SELECT image_id, classes, probs FROM image_tags WHERE store=?"
        if ids is None:
            return self._con.execute(q, (store,)).fetchall()
        wanted = [int(i) for i in ids]
        if len(wanted) > _LOOKUPS:  # one scan of the table beats thousands of lookups
            keep = set(wanted)
            return [r for r in self._con.execute(q, (store,)) if r[0] in keep]
        rows = []
        for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 900]
            rows += self._con.execute(
                q + f" AND image_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                (store, *chunk)).fetchall()
        return rows
