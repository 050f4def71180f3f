"""What the inspect stage keeps: each image's pixel measures, the near-duplicate pairs it
found, each image's nearest-neighbour similarities, and the flags of the latest inspection.

Measures and neighbours are keyed by image id *and* the content hash they were made from, so
a file whose content changed is measured and compared again; pairs whose images are no
longer usable simply drop out of what is read back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
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
        ``{"id": ids, column: values...}`` (NaN where a measure is None; ``turns``: one row
        of bytes per image, zeros where it has none or one of another length). Read in
        pieces into arrays: at a million images a list of rows held 0.5 GB."""
        cols = ", ".join(f"p.{c}" for c in STATS_COLUMNS)
        where = ("FROM pixel_stats p JOIN images i ON i.id=p.image_id WHERE i.status='ok' "
                 "AND p.sha256=i.sha256 AND p.version=?")
        width = self._con.execute(f"SELECT coalesce(max(length(p.turns)), 0) {where}",  # noqa: S608
                                  (version,)).fetchone()[0]
        floats = [c for c in STATS_COLUMNS if c not in ("phash", "turns")]
        n, pieces = _pieces(self._con, where, (version,),
                            f"SELECT p.image_id, {cols} {where} ORDER BY p.image_id")  # noqa: S608
        out: dict[str, Any] = {"id": np.empty(n, np.int64), "phash": np.empty(n, np.int64),
                               **{c: np.empty(n, np.float64) for c in floats},
                               "turns": np.zeros((n, width), np.uint8)}
        for k, rows in pieces:
            part = list(zip(*rows, strict=True))
            out["id"][k] = part[0]
            out["phash"][k] = part[1 + STATS_COLUMNS.index("phash")]
            for c in floats:
                out[c][k] = np.array(part[1 + STATS_COLUMNS.index(c)], dtype=np.float64)
            blobs = part[1 + STATS_COLUMNS.index("turns")]
            if width and all(b is not None and len(b) == width for b in blobs):
                out["turns"][k] = np.frombuffer(b"".join(blobs), np.uint8).reshape(-1, width)
            else:
                for r, b in enumerate(blobs, k.start):
                    if b is not None and len(b) == width:
                        out["turns"][r] = np.frombuffer(b, np.uint8)
        return out

    def measured_ids(self: Workspace, version: int) -> np.ndarray:
        """Ids of the usable images with current measures of ``version``, ascending."""
        rows = self._con.execute(
            "SELECT p.image_id FROM pixel_stats p JOIN images i ON i.id=p.image_id WHERE "
            "i.status='ok' AND p.sha256=i.sha256 AND p.version=? ORDER BY p.image_id",
            (version,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def comparable_images(self: Workspace) -> dict[str, np.ndarray]:
        """Per usable image, by id: ``id``, ``content`` (one number per distinct content
        hash), ``width`` and ``height`` (0 when unknown): what comparing them needs of the
        catalogue, as arrays (a million rows as objects held 0.6 GB)."""
        where = "FROM images WHERE status='ok'"
        n, pieces = _pieces(self._con, where, (),
                            "SELECT id, coalesce(sha256, 'id' || id), coalesce(width, 0), "
                            f"coalesce(height, 0) {where} ORDER BY id")  # noqa: S608
        ids = np.empty(n, np.int64)
        sha = np.empty(n, "S64")
        size = np.zeros((n, 2), np.int64)
        for k, rows in pieces:
            part = list(zip(*rows, strict=True))
            ids[k] = part[0]
            sha[k] = [s.encode() for s in part[1]]
            size[k, 0], size[k, 1] = part[2], part[3]
        _, content = np.unique(sha, return_inverse=True)
        return {"id": ids, "content": content.astype(np.int64), "width": size[:, 0],
                "height": size[:, 1]}

    # -- what has been compared ----------------------------------------------------------------
    def inspected(self: Workspace, store: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Usable images already compared with the collection in feature store ``store``,
        from their current content: ``(ids, similarities)``, ids ascending, each row the
        image's nearest-neighbour similarities NaN-padded to ``width``."""
        where = ("FROM inspected n JOIN images i ON i.id=n.image_id WHERE i.status='ok' "
                 "AND n.sha256=i.sha256 AND n.store=?")
        n, pieces = _pieces(self._con, where, (store,),
                            f"SELECT n.image_id, n.neighbours {where} ORDER BY n.image_id")  # noqa: S608
        ids = np.empty(n, np.int64)
        sims = np.full((n, width), np.nan, np.float32)
        for k, rows in pieces:
            for r, (i, blob) in enumerate(rows, k.start):
                ids[r] = i
                v = np.frombuffer(blob, np.float32)[:width]
                sims[r, :len(v)] = v
        return ids, sims

    def record_inspected(self: Workspace, store: str,
                         rows: Iterable[tuple[int, np.ndarray]]) -> None:
        """Images compared with the collection, with their neighbour similarities."""
        with self.transaction("recording inspected images") as con:
            con.executemany(
                "INSERT OR REPLACE INTO inspected(image_id, sha256, store, neighbours) "
                "SELECT id, sha256, ?, ? FROM images WHERE id=?",
                ((store, np.asarray(nb, np.float32).tobytes(), int(i)) for i, nb in rows))

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

    def forget_comparisons(self: Workspace, store: str) -> None:
        """Forget which images were compared in feature store ``store`` and every recorded
        pair: the next inspection compares everything again."""
        with self.transaction("forgetting comparisons") as con:
            con.execute("DELETE FROM inspected WHERE store=?", (store,))
            con.execute("DELETE FROM duplicate_pairs")

    def forget_pairs_of(self: Workspace, image_ids: Sequence[int]) -> None:
        """Drop the pairs of images about to be compared again (their content changed)."""
        if self._con.execute("SELECT 1 FROM duplicate_pairs LIMIT 1").fetchone() is None:
            return  # nothing to forget (a first inspection of a million: 1M deletes)
        with self.transaction("recording near-duplicates") as con:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS forget(id INTEGER PRIMARY KEY)")
            con.execute("DELETE FROM forget")
            con.executemany("INSERT OR IGNORE INTO forget VALUES (?)",
                            [(int(i),) for i in image_ids])
            con.execute("DELETE FROM duplicate_pairs WHERE a IN (SELECT id FROM forget) "
                        "OR b IN (SELECT id FROM forget)")
            con.execute("DELETE FROM forget")

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


def _pieces(con: Any, where: str, args: tuple, query: str
            ) -> tuple[int, Iterator[tuple[slice, list[tuple]]]]:
    """How many rows ``where`` selects, and ``query``'s rows in pieces with the slice of the
    result arrays each fills: a million rows are read without ever holding them all."""
    n = con.execute(f"SELECT count(*) {where}", args).fetchone()[0]  # noqa: S608

    def pieces() -> Iterator[tuple[slice, list[tuple]]]:
        cur = con.execute(query, args)
        at = 0
        while rows := cur.fetchmany(65_536):
            yield slice(at, at + len(rows)), rows
            at += len(rows)

    return n, pieces()
