"""Write a plan (:mod:`imgatlas.export._plan`) as a folder tree, and its manifest.

The source files are only ever read (``copy``), linked to (``link``: a symbolic link) or
given another name (``hardlink``): nothing under a scanned folder is written, moved or
deleted. A rerun into the same folder is idempotent: what is already in place is left, what
the previous export put there and this one does not want is removed (only files listed in
the previous ``manifest.csv``), and the manifest is rewritten atomically last.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
from collections import Counter
from pathlib import Path

from imgatlas import defaults
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.export._plan import Placement

MANIFEST = "manifest.csv"
MODES = defaults.EXPORT_MODES
COLUMNS = ["id", "source_path", "target_path", "cluster", "cluster_name", "cluster_name_kind",
           "flags", "near_duplicate_group", "near_duplicate_role", "sha256", "width", "height"]


def check_out(out: Path, sources: list[bytes], workspace: Path) -> Path:
    """The export folder, refused (one line) inside a scanned folder or the workspace,
    around a scanned folder, or when it holds something that is not an earlier export."""
    real = Path(os.path.realpath(out))
    for root in {os.path.realpath(s) for s in sources}:
        r = Path(os.fsdecode(root))
        if real == r or r in real.parents:
            raise ConfigError(f"Refusing to export into {out}: it is inside the scanned "
                              f"folder {r}, which imgatlas never writes to.")
        if real in r.parents:
            raise ConfigError(f"Refusing to export into {out}: it holds the scanned folder "
                              f"{r}; choose a folder beside it.")
    ws = Path(os.path.realpath(workspace))
    if real == ws or ws in real.parents:
        raise ConfigError(f"Refusing to export into {out}: it is inside the workspace.")
    if real.exists() and not real.is_dir():
        raise ConfigError(f"Cannot export into {out}: it is a file.")
    if real.is_dir() and any(real.iterdir()) and not (real / MANIFEST).is_file():
        raise ConfigError(f"Refusing to export into {out}: it is not empty and holds no "
                          f"{MANIFEST} of an earlier export.")
    return real


def write_export(plan: list[Placement], out: Path, mode: str) -> dict[str, int]:
    """Lay ``plan`` out under ``out`` (checked by :func:`check_out`) with ``mode``; return
    the number of images per top folder."""
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}. Got {mode!r} instead.")
    out.mkdir(parents=True, exist_ok=True)
    wanted = {p.target for p in plan}
    for old in _previous_targets(out) - wanted:
        _remove(out, old)
    for p in plan:
        place(p.source, p.display, out / p.target, mode)
    _write_manifest(out, plan)
    return dict(sorted(Counter(p.target.split("/", 1)[0] for p in plan).items()))


def place(source: bytes, display: str, dst: Path, mode: str) -> None:
    """Put ``source`` at ``dst`` as a symbolic link, a hard link or a copy (``mode``),
    atomically; an error is one line naming the image (``display``)."""
    if _already(source, dst, mode):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.imgatlas-tmp")
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        if mode == "link":
            os.symlink(os.path.abspath(source), os.fsencode(tmp))
        elif mode == "hardlink":
            os.link(source, os.fsencode(tmp))
        else:
            shutil.copy2(os.fsdecode(source), tmp)
        os.replace(tmp, dst)
    except OSError as e:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        if e.errno == errno.EXDEV:
            raise ConfigError(f"Cannot hard-link {display} into {dst.parent}: another "
                              "file system; use --mode copy or --mode link.") from e
        if e.errno == errno.ENOSPC:
            raise WorkspaceError(f"Disk full while exporting to {dst.parent}.") from e
        raise WorkspaceError(f"Cannot export {display} to {dst}: "
                             f"{e.strerror or e}.") from e


def _already(source: bytes, dst: Path, mode: str) -> bool:
    """Is ``dst`` already what ``mode`` would make of ``source``?"""
    try:
        if mode == "link":
            return dst.is_symlink() and os.readlink(os.fsencode(dst)) == os.path.abspath(source)
        if dst.is_symlink() or not dst.is_file():
            return False
        a, b = os.stat(source), os.stat(dst)
        if mode == "hardlink":
            return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
    except OSError:
        return False


def _previous_targets(out: Path) -> set[str]:
    manifest = out / MANIFEST
    if not manifest.is_file():
        return set()
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            return {row["target_path"] for row in csv.DictReader(f) if row.get("target_path")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return set()


def _remove(out: Path, target: str) -> None:
    """Remove what an earlier export put at ``target`` (never anything outside ``out``),
    and the folders that leaves empty."""
    path = Path(os.path.normpath(out / target))
    if out not in path.parents:
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    parent = path.parent
    while parent != out and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _write_manifest(out: Path, plan: list[Placement]) -> None:
    tmp = out / f".{MANIFEST}.imgatlas-tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for p in plan:
            w.writerow([p.image_id, p.display, p.target,
                        "" if p.cluster is None else p.cluster, p.cluster_name or "",
                        p.name_kind, ";".join(p.flags), "" if p.group is None else p.group, p.role,
                        p.sha256 or "", p.width or "", p.height or ""])
    os.replace(tmp, out / MANIFEST)
