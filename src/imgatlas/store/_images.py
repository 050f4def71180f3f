"""Images in the catalog: what the scan recorded, their status, labels and duplicates."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgatlas.store.catalog import IMAGE_COLUMNS, ImageRow, Status

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace

UNUSABLE = "status NOT IN ('ok', 'missing')"


@dataclass(frozen=True)
class ScannedFile:
    """One file as the scan found it, ready to be recorded."""

    path: bytes
    display: str
    root: bytes
    label: str | None
    status: str
    reason: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    probe_version: int = 1


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int | None
    mtime_ns: int | None
    status: str
    sha256: str | None
    probe_version: int = 1


class ImagesMixin:
    """The ``images`` and ``user_labels`` tables of a :class:`~imgatlas.store.Workspace`."""

    _con: Any

    # -- reading ---------------------------------------------------------------------------
    def images(self: Workspace, status: str | None = Status.OK) -> list[ImageRow]:
        """Every image (with ``status``; all when None), in id order."""
        q = f"SELECT {IMAGE_COLUMNS} FROM images"
        args: tuple[Any, ...] = ()
        if status is not None:
            q += " WHERE status=?"
            args = (str(status),)
        return [ImageRow(*r) for r in self._con.execute(q + " ORDER BY id", args)]

    def usable_paths(self: Workspace) -> Iterator[tuple[int, bytes, bytes]]:
        """``(id, path, root)`` of every usable image, streamed (nothing else of a
        million rows held at once)."""
        cur = self._con.execute("SELECT id, path, root FROM images WHERE status='ok' "
                                "ORDER BY id")
        while rows := cur.fetchmany(65_536):
            yield from rows

    def images_by_id(self: Workspace, image_ids: list[int]) -> dict[int, ImageRow]:
        """The rows of ``image_ids`` (any status), by id; unknown ids are left out."""
        out: dict[int, ImageRow] = {}
        for i in range(0, len(image_ids), 900):  # SQLite's bound-parameter limit
            chunk = [int(x) for x in image_ids[i:i + 900]]
            q = (f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN "
                 f"({','.join('?' * len(chunk))})")
            out.update((r[0], ImageRow(*r)) for r in self._con.execute(q, chunk))
        return out

    def image(self: Workspace, image_id: int) -> ImageRow | None:
        r = self._con.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id=?",
                              (int(image_id),)).fetchone()
        return ImageRow(*r) if r else None

    def status_counts(self: Workspace) -> dict[str, int]:
        return dict(self._con.execute("SELECT status, count(*) FROM images GROUP BY status"))

    def max_image_id(self: Workspace) -> int:
        return int(self._con.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0])

    def unusable_images(self: Workspace, limit: int | None = None) -> list[dict[str, Any]]:
        """Files that could not be used (not missing ones), with status and reason."""
        q = (f"SELECT id, display, status, reason FROM images WHERE {UNUSABLE} "  # noqa: S608
             "ORDER BY status, display")
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        return [{"id": r[0], "path": r[1], "status": r[2], "reason": r[3]}
                for r in self._con.execute(q)]

    def n_labels(self: Workspace) -> int:
        """How many distinct folder labels the usable images carry."""
        return int(self._con.execute(
            "SELECT count(DISTINCT label) FROM images WHERE status='ok' AND label IS NOT NULL"
        ).fetchone()[0])

    def display_and_label(self: Workspace, ids: Iterable[int] | None = None
                          ) -> dict[int, tuple[str, str | None]]:
        """``{id: (printable path, folder label)}`` for every image, or for ``ids``."""
        if ids is None:
            return {r[0]: (r[1], r[2])
                    for r in self._con.execute("SELECT id, display, label FROM images")}
        wanted = [int(i) for i in ids]
        out: dict[int, tuple[str, str | None]] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            q = ",".join("?" * len(chunk))
            out.update({r[0]: (r[1], r[2]) for r in self._con.execute(
                f"SELECT id, display, label FROM images WHERE id IN ({q})", chunk)})  # noqa: S608
        return out

    def ids_with_sha256(self: Workspace, digest: str) -> list[int]:
        """Usable images whose content hash is ``digest`` (exact copies), in id order."""
        return [r[0] for r in self._con.execute(
            "SELECT id FROM images WHERE sha256=? AND status='ok' ORDER BY id", (digest,))]

    # -- scan ------------------------------------------------------------------------------
    def known_files(self: Workspace, root: bytes) -> dict[bytes, KnownFile]:
        """What an earlier scan of ``root`` recorded, by path."""
        return {bytes(r[0]): KnownFile(*r[1:6], r[6] or 1) for r in self._con.execute(
            "SELECT path, id, size, mtime_ns, status, sha256, probe_version FROM images "
            "WHERE root=?", (root,))}

    def record_scanned(self: Workspace, files: Iterable[ScannedFile],
                       known: dict[bytes, KnownFile]) -> tuple[int, int]:
        """Insert or update scanned files in one transaction; a file whose content changed
        loses its stored features. Returns ``(new, changed)``."""
        new = changed = 0
        now = time.time()
        with self.transaction("recording scanned files") as con:
            for f in files:
                old = known.get(f.path)
                if old is None:
                    new += 1
                else:
                    changed += 1
                    if f.sha256 != old.sha256:  # stale vectors must be recomputed
                        con.execute("DELETE FROM embedded WHERE image_id=?", (old.id,))
                con.execute(
                    """INSERT INTO images(path, display, root, size, mtime_ns, sha256, width,
                                          height, format, mode, label, status, reason,
                                          scanned_at, probe_version)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(path) DO UPDATE SET
                         display=excluded.display, root=excluded.root, size=excluded.size,
                         mtime_ns=excluded.mtime_ns, sha256=excluded.sha256,
                         width=excluded.width, height=excluded.height,
                         format=excluded.format, mode=excluded.mode, label=excluded.label,
                         status=excluded.status, reason=excluded.reason,
                         scanned_at=excluded.scanned_at, probe_version=excluded.probe_version""",
                    (f.path, f.display, f.root, f.size, f.mtime_ns, f.sha256, f.width,
                     f.height, f.format, f.mode, f.label, f.status, f.reason, now,
                     f.probe_version))
        return new, changed

    def refresh_labels(self: Workspace, root: bytes,
                       path_labels: Iterable[tuple[bytes, str | None]]) -> None:
        """Unchanged files: only their folder label (and root) may change."""
        with self.transaction("recording scanned files") as con:
            con.executemany("UPDATE images SET label=?, root=? WHERE path=?",
                            [(label, root, p) for p, label in path_labels])

    def mark_missing(self: Workspace, image_ids: Iterable[int]) -> None:
        with self.transaction("recording removed files") as con:
            con.executemany(
                "UPDATE images SET status='missing', reason='file no longer found at the last "
                "scan' WHERE id=?", [(int(i),) for i in image_ids])

    def mark_decode_errors(self: Workspace, failures: Iterable[tuple[int, str]]) -> None:
        """Images that passed the scan but failed to decode later, with the reason."""
        with self.transaction("recording decode failures") as con:
            con.executemany("UPDATE images SET status='decode_error', reason=? WHERE id=?",
                            [(reason, int(i)) for i, reason in failures])

    def root_summary(self: Workspace, root: bytes) -> tuple[dict[str, int], int]:
        """Per-status counts of the files under ``root`` and its exact duplicates."""
        by_status = dict(self._con.execute(
            "SELECT status, count(*) FROM images WHERE root=? GROUP BY status", (root,)))
        dup = self._con.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM images "
            "WHERE status='ok' AND root=? GROUP BY sha256)", (root,)).fetchone()[0]
        return by_status, int(dup)

    # -- labels a person gave ----------------------------------------------------------------
    def set_user_labels(self: Workspace, labels: Iterable[tuple[int, str | None]],
                        source: str) -> int:
        """Give images a label (``None`` removes it); returns how many rows changed."""
        now = time.time()
        rows = list(labels)
        with self.transaction("recording labels") as con:
            con.executemany("DELETE FROM user_labels WHERE image_id=?",
                            [(int(i),) for i, lab in rows if lab is None])
            con.executemany(
                "INSERT OR REPLACE INTO user_labels(image_id, label, source, created_at) "
                "VALUES (?,?,?,?)", [(int(i), lab, source, now) for i, lab in rows
                                     if lab is not None])
        return len(rows)

    def unusable_user_labels(self: Workspace) -> dict[int, str]:
        """``{image id: status}`` of images a person labelled that are no longer usable
        (deleted, missing, broken since): their labels are kept but count nowhere."""
        return dict(self._con.execute(
            "SELECT u.image_id, i.status FROM user_labels u JOIN images i ON i.id=u.image_id "
            "WHERE i.status!='ok' ORDER BY u.image_id"))

    def user_labels(self: Workspace, ids: list[int] | None = None) -> dict[int, str]:
        """``{image id: label}`` given by a person, for usable images (or ``ids``)."""
        if ids is not None:
            q = ",".join("?" * len(ids))
            return dict(self._con.execute(
                f"SELECT image_id, label FROM user_labels WHERE image_id IN ({q})",  # noqa: S608
                [int(i) for i in ids])) if ids else {}
        return dict(self._con.execute(
            "SELECT u.image_id, u.label FROM user_labels u JOIN images i ON i.id=u.image_id "
            "WHERE i.status='ok' ORDER BY u.image_id"))
