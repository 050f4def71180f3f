"""Disk-full and damaged-catalog errors as one-line WorkspaceErrors, for every store module."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator

from imgatlas.errors import WorkspaceError


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
