"""Open, lock and version-check a workspace directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgatlas.errors import ConfigError, WorkspaceError, WorkspaceLocked
from imgatlas.store._clusters import ClustersMixin
from imgatlas.store._images import ImagesMixin
from imgatlas.store._inspect import InspectMixin
from imgatlas.store._io import io_errors
from imgatlas.store._runs import RunsMixin
from imgatlas.store._spaces import SpacesMixin
from imgatlas.store._tags import TagsMixin
from imgatlas.store.catalog import ADDED_COLUMNS, SCHEMA, SCHEMA_VERSION, connect

if TYPE_CHECKING:
    from imgatlas.store.features import FeatureStore

CATALOG = "catalog.sqlite"
LOCK = "lock"


class Workspace(ImagesMixin, ClustersMixin, RunsMixin, InspectMixin, TagsMixin,
                SpacesMixin):
    """A directory with ``catalog.sqlite`` and ``features/``; the one owner of its data.

    Open it with :meth:`open` (read-only use) or :meth:`open` with ``write=True``, which takes
    an exclusive lock for the life of the object so that two writers never interleave.
    Stages and faces ask it for what they need through named methods (images, runs,
    assignments, cluster names, feature stores); the SQL lives here, in ``store/``, and the
    connection is private.
    """

    def __init__(self, path: Path, con: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._con = con
        self._lock_fd = lock_fd

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

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
        has_meta = self._con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            if not create and self._con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise WorkspaceError(f"{self.path / CATALOG} is not an imgatlas catalog.")
            from imgatlas._version import __version__

            self._con.executescript(SCHEMA)
            self._con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), ('created_by', ?)",
                (str(SCHEMA_VERSION), __version__),
            )
            return
        row = self._con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"Workspace {self.path} has schema version {version}, newer than this imgatlas "
                f"understands ({SCHEMA_VERSION}); upgrade imgatlas."
            )
        if version < 1:
            raise WorkspaceError(f"Workspace {self.path} has no valid schema version.")
        if self._lock_fd is not None:
            # Additive, idempotent: tables and columns added within a schema version appear
            # on the next write.
            self._con.executescript(SCHEMA)
            for table, column, decl in ADDED_COLUMNS:
                have = {r[1] for r in self._con.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def _close_stale_runs(self) -> None:
        # We hold the lock, so any run still marked running died without cleaning up.
        self._con.execute(
            "UPDATE runs SET status='interrupted', error='the process stopped before the run "
            "ended' WHERE status='running'")

    def close(self) -> None:
        self._con.close()
        _release(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, what: str = "writing the catalog") -> Iterator[sqlite3.Connection]:
        """One write transaction (for ``store/`` modules); a disk-full or damaged catalog
        becomes a one-line WorkspaceError naming ``what``."""
        with io_errors(what):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    # -- feature stores --------------------------------------------------------------------
    def feature_stores(self) -> list[FeatureStore]:
        """Every feature store, oldest first."""
        from imgatlas.store.features import FeatureStore

        return FeatureStore.all(self)

    def feature_store(self, key: str) -> FeatureStore | None:
        from imgatlas.store.features import FeatureStore

        return FeatureStore.get(self, key)

    def pick_store(self, features: str | None = None) -> FeatureStore:
        """The store called ``features`` (a key or a backbone name; the latest matching),
        or the latest store of the images' own pixels (not a view such as the photos' line
        maps); a one-line error when there is none."""
        stores = self.feature_stores()
        if not stores:
            raise WorkspaceError(
                f"Workspace {self.path} has no features yet; run 'imgatlas embed'.")
        if features is None:  # the default store, else the latest of the images themselves
            chosen = self.default_store()
            plain = [s for s in stores if not s.cfg.get("view")]
            return next((s for s in stores if s.key == chosen), None) or (plain or stores)[-1]
        for s in sorted(reversed(stores), key=lambda s: bool(s.cfg.get("view"))):
            if features in (s.key, s.backbone):
                return s
        raise ConfigError(
            f"No feature store {features!r}; have {', '.join(s.key for s in stores)}.")

    def default_store(self) -> str | None:
        """The store a person last embedded with (``embed``), which stages use when asked
        for none; stores made for one purpose (a second backbone for a classifier) do not
        take its place."""
        row = self._con.execute("SELECT value FROM meta WHERE key='default_store'").fetchone()
        return row[0] if row else None

    def set_default_store(self, key: str) -> None:
        with self.transaction("recording the default feature store") as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('default_store', ?)", (key,))

    def run_store(self, run: dict[str, Any]) -> FeatureStore:
        """The feature store a recorded run used; a one-line error when it is gone."""
        key = run["params"].get("features")
        store = self.feature_store(key) if key else None
        if store is None:
            raise WorkspaceError(
                f"Run {run['id']} used feature store {key!r}, which is no longer in the "
                "workspace; run it again on the current features.")
        return store


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
