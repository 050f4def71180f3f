"""Each image's top ImageNet classes, per feature store (they are computed from its
features): what names clusters and answers text searches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace


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
        q = "SELECT image_id, classes, probs FROM image_tags WHERE store=?"
        if ids is None:
            rows = self._con.execute(q, (store,)).fetchall()
        else:
            wanted = [int(i) for i in ids]
            rows = []
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start:start + 900]
                rows += self._con.execute(
                    q + f" AND image_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                    (store, *chunk)).fetchall()
        return {r[0]: (np.frombuffer(r[1], "<i2").astype(np.int64),
                       np.frombuffer(r[2], "<f4")) for r in rows}
