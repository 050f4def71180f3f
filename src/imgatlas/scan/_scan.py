from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from imgatlas._progress import progress_bar
from imgatlas._text import printable
from imgatlas.errors import ConfigError
from imgatlas.scan._probe import PROBE_VERSION, ProbeResult, probe
from imgatlas.scan._walk import Found, walk
from imgatlas.store import ScannedFile, Status, Workspace

_COMMIT_EVERY = 256  # rows per transaction: a killed scan loses at most this much work
# Below this median file size the probe is Python work that holds the GIL, and threads only
# hand it to and fro: 10,000 dev 28-32 px files took 0.77 s in one thread and 1.5-1.9 s in
# 2-4 (10 KB dev photos: 0.10 s against 0.12; 29 KB ones: 0.44 s against 0.30 in 4).
_THREADS_FROM_BYTES = 16 * 1024


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
        raise ConfigError(f"Cannot scan {printable(broot)}: it {what}.")
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive int. Got {max_pixels} instead.")
    t0 = time.perf_counter()
    params = {"root": printable(broot), "labels_from_folders": labels_from_folders,
              "max_pixels": max_pixels}
    with ws.recording("scan", params) as run:
        known = ws.known_files(broot)
        exclude = frozenset({os.path.abspath(os.fsencode(ws.path))})
        found = list(walk(broot, exclude))
        counts = {"found": len(found), "new": 0, "changed": 0, "unchanged": 0, "removed": 0}

        def label_of(f: Found) -> str | None:
            return f.label if labels_from_folders else None

        def record(pairs: list[tuple[Found, ProbeResult]]) -> None:
            new, changed = ws.record_scanned(
                (_scanned(f, r, broot, label_of(f)) for f, r in pairs), known)
            # a file probed again only because an older probe recorded it is unchanged
            same = sum(1 for f, r in pairs if f.path in reprobe
                       and r.sha256 == known[f.path].sha256)
            counts["new"] += new
            counts["changed"] += changed - same
            counts["unchanged"] += same

        to_probe: list[Found] = []
        unchanged: list[Found] = []
        reprobe: set[bytes] = set()
        problems: list[tuple[Found, ProbeResult]] = []
        for f in found:
            old = known.get(f.path)
            if f.problem:
                problems.append((f, ProbeResult(Status(f.problem), f.reason)))
            elif old is not None and old.status not in (Status.MISSING, Status.UNREADABLE) \
                    and _same_stat(f.path, old.size, old.mtime_ns):
                if old.probe_version < PROBE_VERSION and old.status == Status.OK:
                    reprobe.add(f.path)  # what an older probe recorded is corrected
                    to_probe.append(f)
                else:
                    unchanged.append(f)  # only its label may change
            else:
                to_probe.append(f)
        ws.refresh_labels(broot, [(f.path, label_of(f)) for f in unchanged])
        counts["unchanged"] += len(unchanged)
        record(problems)

        bar = progress_bar(total=len(to_probe), desc="scan", unit="file", enable=progress)
        threads = workers if _median_size(to_probe) >= _THREADS_FROM_BYTES else 1
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            mapper = pool.map if threads > 1 else map
            results = mapper(lambda f: (f, probe(f.path, max_pixels)), to_probe)
            while batch := list(islice(results, _COMMIT_EVERY)):
                record(batch)
                bar.update(len(batch))
        bar.close()

        seen = {f.path for f in found}
        gone = [old.id for p, old in known.items()
                if p not in seen and old.status != Status.MISSING]
        ws.mark_missing(gone)
        counts["removed"] = len(gone)
        by_status, dup = ws.root_summary(broot)
        run.results = {**counts, "by_status": by_status, "exact_duplicates": dup,
                       "seconds": round(time.perf_counter() - t0, 3), "run_id": run.id}
    return run.results


def _median_size(files: list[Found], sample: int = 64) -> int:
    """Median size in bytes of up to ``sample`` files spread over ``files`` (0 if none)."""
    sizes = []
    for f in files[::max(1, len(files) // sample)][:sample]:
        try:
            sizes.append(os.stat(f.path).st_size)
        except OSError:
            continue
    return sorted(sizes)[len(sizes) // 2] if sizes else 0


def _same_stat(path: bytes, size: int | None, mtime_ns: int | None) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


def _scanned(f: Found, r: ProbeResult, root: bytes, label: str | None) -> ScannedFile:
    return ScannedFile(
        path=f.path, display=printable(f.path), root=root, label=label, status=str(r.status),
        reason=r.reason, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256, width=r.width,
        height=r.height, format=r.format, mode=r.mode, probe_version=PROBE_VERSION)

