"""What the inspect stage keeps: each image's pixel measures, the near-duplicate pairs it
found, each image's nearest-neighbour similarities, and the flags of the latest inspection.

Measures and neighbours are keyed by image id *and* the content hash they were made from, so
a file whose content changed is measured and compared again; pairs whose images are no
longer usable simply drop out of what is read back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace

STATS_COLUMNS = ("phash", "edge_width", "mean", "p01", "p99", "std", "entropy", "chroma",
                 "side", "turns")


class InspectMixin:
    """The ``pixel_stats``, ``inspected``, ``duplicate_pairs`` and ``flags`` tables."""

    _con: Any

    # -- pixel measures ----------------------------------------------------------------------
    def record_pixel_stats(self: Workspace, version: int,
                           rows: Iterable[tuple[int, str, tuple]]) -> None:
        """``(image id, sha256, measures in STATS_COLUMNS order)`` per image."""
        cols = ", ".join(STATS_COLUMNS)
        marks = ",".join("?" * (len(STATS_COLUMNS) + 3))
        with self.transaction("recording pixel measures") as con:
            con.executemany(
                f"INSERT OR REPLACE INTO pixel_stats(image_id, sha256, version, {cols}) "  # noqa: S608
                f"VALUES ({marks})",
                [(int(i), sha, version, *vals) for i, sha, vals in rows])

    def pixel_stats(self: Workspace, version: int) -> dict[str, np.ndarray]:
        """Measures of every usable image measured by ``version`` from its current content:
        ``{"id": ids, column: values...}`` (NaN where a measure is None)."""
        cols = ", ".join(f"p.{c}" for c in STATS_COLUMNS)
        rows = self._con.execute(
            f"SELECT p.image_id, {cols} FROM pixel_stats p JOIN images i ON i.id=p.image_id "  # noqa: S608
            "WHERE i.status='ok' AND p.sha256=i.sha256 AND p.version=? ORDER BY p.image_id",
            (version,)).fetchall()
        out: dict[str, np.ndarray] = {"id": np.array([r[0] for r in rows], dtype=np.int64)}
        for k, c in enumerate(STATS_COLUMNS, 1):
            if c == "phash":
                out[c] = np.array([r[k] for r in rows], dtype=np.int64)
            elif c == "turns":  # 7 hashes of 8 bytes (inspect/_pixels.py TURNS), as stored
                out[c] = np.array([r[k] for r in rows], dtype=object)
            else:
                out[c] = np.array([np.nan if r[k] is None else r[k] for r in rows],
                                  dtype=np.float64)
        return out

    # -- what has been compared ----------------------------------------------------------------
    def inspected(self: Workspace, store: str) -> dict[int, np.ndarray]:
        """``{image id: its nearest-neighbour similarities}`` for usable images already
        compared with the collection, in feature store ``store``, from their current
        content."""
        return {r[0]: np.frombuffer(r[1], dtype=np.float32) for r in self._con.execute(
            "SELECT n.image_id, n.neighbours FROM inspected n JOIN images i ON "
            "i.id=n.image_id WHERE i.status='ok' AND n.sha256=i.sha256 AND n.store=?",
            (store,))}

    def record_inspected(self: Workspace, store: str,
                         rows: Iterable[tuple[int, np.ndarray]]) -> None:
        """Images compared with the collection, with their neighbour similarities."""
        with self.transaction("recording inspected images") as con:
            con.executemany(
                "INSERT OR REPLACE INTO inspected(image_id, sha256, store, neighbours) "
                "SELECT id, sha256, ?, ? FROM images WHERE id=?",
                [(store, np.asarray(nb, np.float32).tobytes(), int(i)) for i, nb in rows])

    # -- near-duplicates ---------------------------------------------------------------------
    def record_duplicate_pairs(self: Workspace,
                               pairs: Iterable[tuple[int, int, float, float, int, str]]
                               ) -> None:
        """``(a, b, similarity, cosine, hash distance, evidence)`` per pair judged to be
        copies of one picture."""
        now = time.time()
        with self.transaction("recording near-duplicates") as con:
            con.executemany(
                "INSERT OR REPLACE INTO duplicate_pairs(a, b, similarity, cosine, "
                "hash_distance, evidence, found_at) VALUES (?,?,?,?,?,?,?)",
                [(min(a, b), max(a, b), s, c, h, e, now) for a, b, s, c, h, e in pairs])

    def duplicate_pairs(self: Workspace) -> list[tuple[int, int, float, float, int, str]]:
        """Every recorded pair whose two images are still usable, unchanged since."""
        return self._con.execute(
            "SELECT d.a, d.b, d.similarity, d.cosine, d.hash_distance, d.evidence "
            "FROM duplicate_pairs d JOIN inspected na ON na.image_id=d.a "
            "JOIN inspected nb ON nb.image_id=d.b JOIN images ia ON ia.id=d.a "
            "JOIN images ib ON ib.id=d.b WHERE ia.status='ok' AND ib.status='ok' "
            "AND na.sha256=ia.sha256 AND nb.sha256=ib.sha256 ORDER BY d.a, d.b").fetchall()

    def forget_pairs_of(self: Workspace, image_ids: Sequence[int]) -> None:
        """Drop the pairs of images about to be compared again (their content changed)."""
        with self.transaction("recording near-duplicates") as con:
            con.executemany("DELETE FROM duplicate_pairs WHERE a=? OR b=?",
                            [(int(i), int(i)) for i in image_ids])

    # -- flags -------------------------------------------------------------------------------
    def replace_flags(self: Workspace, run_id: int,
                      rows: Iterable[tuple[int, str, float, str]]) -> None:
        """The flags of the latest inspection (``(image id, flag, score, reason)``)."""
        with self.transaction("recording flags") as con:
            con.execute("DELETE FROM flags")
            con.executemany(
                "INSERT INTO flags(image_id, flag, score, reason, run_id) VALUES (?,?,?,?,?)",
                [(int(i), f, float(s), r, run_id) for i, f, s, r in rows])

    def flags(self: Workspace, flag: str | None = None, image_id: int | None = None
              ) -> list[tuple[int, str, float, str]]:
        """``(image id, flag, score, reason)`` of usable images (with ``flag``, of
        ``image_id``), by flag then score."""
        q = ("SELECT f.image_id, f.flag, f.score, f.reason FROM flags f JOIN images i "
             "ON i.id=f.image_id WHERE i.status='ok'")
        args: tuple[Any, ...] = ()
        if flag is not None:
            q += " AND f.flag=?"
            args += (flag,)
        if image_id is not None:
            q += " AND f.image_id=?"
            args += (int(image_id),)
        return self._con.execute(q + " ORDER BY f.flag, f.score DESC, f.image_id",
                                 args).fetchall()

    def image_facts(self: Workspace, image_ids: Sequence[int]
                    ) -> dict[int, tuple[int, int, str, int, int]]:
        """``{id: (width, height, format, size, mtime_ns)}`` of images (a group's keeper is
        chosen from these)."""
        out: dict[int, tuple[int, int, str, int, int]] = {}
        ids = [int(i) for i in image_ids]
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start:start + 900]
            q = ",".join("?" * len(chunk))
            out.update((r[0], tuple(r[1:])) for r in self._con.execute(
                f"SELECT id, width, height, format, size, mtime_ns FROM images "  # noqa: S608
                f"WHERE id IN ({q})", chunk))
        return out
