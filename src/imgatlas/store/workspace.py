"""Open, lock and version-check a workspace directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgatlas.errors import WorkspaceError, WorkspaceLocked
from imgatlas.store.catalog import SCHEMA, SCHEMA_VERSION, ImageRow, Status, connect

CATALOG = "catalog.sqlite"
LOCK = "lock"


@contextlib.contextmanager
def io_errors(what: str) -> Iterator[None]:
    """Turn disk-full and damaged-database errors into one-line WorkspaceErrors."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        if "full" in str(e):
            raise WorkspaceError(f"Disk full while {what}; free some space and run again.") from e
        raise WorkspaceError(f"Workspace catalog error while {what}: {e}.") from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise WorkspaceError(f"Disk full while {what}; free some space and run again.") from e
        raise


class Workspace:
    """A directory with ``catalog.sqlite`` and ``features/``.

    Open it with :meth:`open` (read-only use) or :meth:`open` with ``write=True``, which takes
    an exclusive lock for the life of the object so that two writers never interleave.
    """

    def __init__(self, path: Path, con: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self.con = con
        self._lock_fd = lock_fd

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        write: bool = False,
        wait: float = 0.0,
        purpose: str = "",
    ) -> Workspace:
        root = Path(path)
        catalog = root / CATALOG
        if not catalog.exists():
            if not create:
                raise WorkspaceError(
                    f"No workspace at {root}: run 'imgatlas scan DIR --workspace {root}' first."
                )
            if root.exists() and not root.is_dir():
                raise WorkspaceError(f"Cannot create a workspace at {root}: it is a file.")
            try:
                (root / "features").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise WorkspaceError(f"Cannot create workspace {root}: {e.strerror}.") from e
        lock_fd = _acquire_lock(root, wait, purpose) if (write or create) else None
        try:
            con = connect(str(catalog))
            ws = cls(root, con, lock_fd)
            with io_errors("opening the workspace"):
                ws._check_schema(create)
                if lock_fd is not None:
                    ws._close_stale_runs()
        except sqlite3.DatabaseError as e:
            _release(lock_fd)
            raise WorkspaceError(
                f"Workspace {root} is damaged: {CATALOG} is unreadable ({e}).") from e
        except BaseException:
            _release(lock_fd)
            raise
        return ws

    def _check_schema(self, create: bool) -> None:
        has_meta = self.con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            if not create and self.con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise WorkspaceError(f"{self.path / CATALOG} is not an imgatlas catalog.")
            from imgatlas import __version__

            self.con.executescript(SCHEMA)
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                (str(SCHEMA_VERSION), __version__),
            )
            return
        row = self.con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"Workspace {self.path} has schema version {version}, newer than this imgatlas "
                f"understands ({SCHEMA_VERSION}); upgrade imgatlas."
            )
        if version < 1:
            raise WorkspaceError(f"Workspace {self.path} has no valid schema version.")
        if self._lock_fd is not None:
            # Additive, idempotent: tables added within a schema version appear on next write.
            self.con.executescript(SCHEMA)

    def _close_stale_runs(self) -> None:
        # We hold the lock, so any run still marked running died without cleaning up.
        self.con.execute(
            "UPDATE runs SET status='interrupted' WHERE status='running'"
        )

    def close(self) -> None:
        self.con.close()
        _release(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, what: str = "writing the catalog") -> Iterator[sqlite3.Connection]:
        with io_errors(what):
            self.con.execute("BEGIN IMMEDIATE")
            try:
                yield self.con
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, kind: str, params: dict[str, Any]) -> int:
        from imgatlas import __version__

        with self.transaction("recording a run"):
            cur = self.con.execute(
                "INSERT INTO runs(kind, status, started_at, version, params) "
                "VALUES (?, 'running', ?, ?, ?)",
                (kind, time.time(), __version__, json.dumps(params, sort_keys=True, default=str)),
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, results: dict[str, Any], status: str = "done") -> None:
        with self.transaction("recording a run"):
            self.con.execute(
                "UPDATE runs SET status=?, finished_at=?, results=? WHERE id=?",
                (status, time.time(), json.dumps(results, sort_keys=True, default=str), run_id),
            )

    def run(self, run_id: int | None, kind: str) -> dict[str, Any]:
        """One run by id, or the latest finished run of ``kind``."""
        from imgatlas.errors import ConfigError

        done = [r for r in self.runs(kind) if r["status"] == "done"]
        if run_id is None:
            if not done:
                raise ConfigError(f"Workspace {self.path} has no finished {kind} run yet.")
            return done[-1]
        for r in self.runs(kind):
            if r["id"] == run_id:
                return r
        raise ConfigError(f"Workspace {self.path} has no {kind} run with id {run_id}.")

    def update_results(self, run_id: int, extra: dict[str, Any]) -> None:
        row = self.con.execute("SELECT results FROM runs WHERE id=?", (run_id,)).fetchone()
        results = json.loads(row[0]) if row and row[0] else {}
        results.update(extra)
        with self.transaction("recording results"):
            self.con.execute("UPDATE runs SET results=? WHERE id=?",
                             (json.dumps(results, sort_keys=True, default=str), run_id))

    def runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, kind, status, started_at, finished_at, version, params, results FROM runs"
        args: tuple[Any, ...] = ()
        if kind:
            q += " WHERE kind=?"
            args = (kind,)
        out = []
        for r in self.con.execute(q + " ORDER BY id", args):
            out.append(
                {
                    "id": r[0], "kind": r[1], "status": r[2], "started_at": r[3],
                    "finished_at": r[4], "version": r[5], "params": json.loads(r[6]),
                    "results": json.loads(r[7]) if r[7] else None,
                }
            )
        return out

    # -- images ------------------------------------------------------------------------------
    def images(self, status: str | None = Status.OK) -> list[ImageRow]:
        q = "SELECT id, path, display, sha256, label, status, reason, width, height FROM images"
        args: tuple[Any, ...] = ()
        if status is not None:
            q += " WHERE status=?"
            args = (str(status),)
        return [ImageRow(*r) for r in self.con.execute(q + " ORDER BY id", args)]

    def status_counts(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT status, count(*) FROM images GROUP BY status"))

    def max_image_id(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0])


def _acquire_lock(root: Path, wait: float, purpose: str) -> int:
    path = root / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise WorkspaceError(f"Cannot open workspace lock {path}: {e.strerror}.") from e
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise WorkspaceLocked(
                    f"Workspace {root} is in use by another imgatlas process ({holder}); "
                    "wait for it to finish or pass --wait SECONDS."
                ) from None
            time.sleep(0.2)
    # Who holds it, for the message a second process prints. Advisory only.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}{', ' + purpose if purpose else ''}".encode(), 0)
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
