from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from imgatlas._progress import progress_bar
from imgatlas.errors import ConfigError
from imgatlas.scan._probe import ProbeResult, probe
from imgatlas.scan._walk import Found, walk
from imgatlas.store.catalog import Status
from imgatlas.store.workspace import Workspace

_COMMIT_EVERY = 256  # rows per transaction: a killed scan loses at most this much work


def scan_directory(
    ws: Workspace,
    root: str | os.PathLike[str] | bytes,
    *,
    labels_from_folders: bool = False,
    max_pixels: int | None = None,
    workers: int = 4,
    progress: bool = False,
) -> dict[str, Any]:
    """Record every image below ``root`` in the catalog; re-scans are incremental.

    Unchanged files (same size and mtime) are not re-read. Changed files are re-hashed and
    their stored features dropped. Files gone since the last scan become ``missing``.
    Returns a summary dict.
    """
    broot = os.path.abspath(os.fsencode(root))
    if not os.path.isdir(broot):
        what = "does not exist" if not os.path.exists(broot) else "is not a directory"
        raise ConfigError(f"Cannot scan {os.fsdecode(broot)}: it {what}.")
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive int. Got {max_pixels} instead.")
    t0 = time.perf_counter()
    params = {"root": os.fsdecode(broot), "labels_from_folders": labels_from_folders,
              "max_pixels": max_pixels}
    run_id = ws.start_run("scan", params)

    known = {
        bytes(r[0]): (r[1], r[2], r[3], r[4], r[5])
        for r in ws.con.execute(
            "SELECT path, id, size, mtime_ns, status, sha256 FROM images WHERE root=?", (broot,)
        )
    }
    exclude = frozenset({os.path.abspath(os.fsencode(ws.path))})
    found = list(walk(broot, exclude))
    counts = {"found": len(found), "new": 0, "changed": 0, "unchanged": 0, "removed": 0}

    to_probe: list[Found] = []
    quick: list[tuple[Found, ProbeResult | None]] = []
    for f in found:
        old = known.get(f.path)
        if f.problem:
            quick.append((f, ProbeResult(Status(f.problem), f.reason)))
            continue
        if old is not None and old[3] not in (Status.MISSING, Status.UNREADABLE):
            try:
                st = os.stat(f.path)
            except OSError:
                to_probe.append(f)
                continue
            if (st.st_size, st.st_mtime_ns) == (old[1], old[2]):
                quick.append((f, None))  # unchanged: refresh the label only
                continue
        to_probe.append(f)

    label_of = (lambda f: f.label) if labels_from_folders else (lambda f: None)
    now = time.time()
    with ws.transaction("recording scanned files") as con:
        for f, res in quick:
            if res is None:
                counts["unchanged"] += 1
                con.execute("UPDATE images SET label=?, root=? WHERE path=?",
                            (label_of(f), broot, f.path))
            else:
                _upsert(con, f, res, broot, label_of(f), now, known, counts)

    bar = progress_bar(total=len(to_probe), desc="scan", unit="file", enable=progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda f: (f, probe(f.path, max_pixels)), to_probe)
        while batch := list(islice(results, _COMMIT_EVERY)):
            with ws.transaction("recording scanned files") as con:
                for f, res in batch:
                    _upsert(con, f, res, broot, label_of(f), time.time(), known, counts)
            bar.update(len(batch))
    bar.close()

    seen = {f.path for f in found}
    gone = [old[0] for p, old in known.items() if p not in seen and old[3] != Status.MISSING]
    with ws.transaction("recording removed files") as con:
        con.executemany(
            "UPDATE images SET status='missing', reason='file no longer found at the last scan' "
            "WHERE id=?", [(i,) for i in gone])
    counts["removed"] = len(gone)

    by_status = dict(ws.con.execute(
        "SELECT status, count(*) FROM images WHERE root=? GROUP BY status", (broot,)))
    dup = ws.con.execute(
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM images "
        "WHERE status='ok' AND root=? GROUP BY sha256)", (broot,)).fetchone()[0]
    summary = {**counts, "by_status": by_status, "exact_duplicates": int(dup),
               "seconds": round(time.perf_counter() - t0, 3), "run_id": run_id}
    ws.finish_run(run_id, summary)
    return summary


def _upsert(con: sqlite3.Connection, f: Found, r: ProbeResult, root: bytes,
            label: str | None, now: float, known: dict, counts: dict) -> None:
    old = known.get(f.path)
    if old is None:
        counts["new"] += 1
    else:
        counts["changed"] += 1
        if r.sha256 != old[4]:
            # New content: any stored vector is stale and must be recomputed.
            con.execute("DELETE FROM embedded WHERE image_id=?", (old[0],))
    con.execute(
        """INSERT INTO images(path, display, root, size, mtime_ns, sha256, width, height,
                              format, mode, label, status, reason, scanned_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(path) DO UPDATE SET
             root=excluded.root, size=excluded.size, mtime_ns=excluded.mtime_ns,
             sha256=excluded.sha256, width=excluded.width, height=excluded.height,
             format=excluded.format, mode=excluded.mode, label=excluded.label,
             status=excluded.status, reason=excluded.reason, scanned_at=excluded.scanned_at""",
        (f.path, display_path(f.path), root, r.size, r.mtime_ns, r.sha256, r.width, r.height,
         r.format, r.mode, label, str(r.status), r.reason, now),
    )


def display_path(path: bytes) -> str:
    """A printable, lossless-looking form of an OS path (undecodable bytes as \\xNN)."""
    return path.decode("utf-8", "backslashreplace")
