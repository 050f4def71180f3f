"""Where training labels come from: folder names, the named clusters of a run, a CSV file,
or the labels a person gave in the workspace (web app, accepted suggestions)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from imgatlas._text import printable
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace


@dataclass
class Labels:
    """Image ids and their labels, and a note of what was left out and why."""

    ids: list[int]
    labels: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


def resolve_labels(ws: Workspace, source: str = "folders") -> Labels:
    """``folders`` | ``user`` | ``run:ID`` | a CSV file path (columns ``path`` or ``sha256``,
    and ``label``)."""
    if source == "folders":
        rows = [(r.id, r.label) for r in ws.images() if r.label is not None]
        if not rows:
            raise ConfigError("No image has a folder label; scan with --labels-from-folders, "
                              "or give --labels run:ID or a CSV file.")
        return Labels([i for i, _ in rows], [lab for _, lab in rows], "folders")
    if source == "user":
        got = ws.user_labels()
        if not got:
            raise ConfigError("No image has a label given in the workspace yet.")
        return Labels(list(got), list(got.values()), "user")
    if source.startswith("run:"):
        return _from_run(ws, source)
    return _from_csv(ws, Path(source))


def _from_run(ws: Workspace, source: str) -> Labels:
    try:
        run_id = int(source.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"--labels run:ID needs a run id. Got {source!r} instead.") from None
    run = ws.get_run(run_id, "cluster")
    names = ws.cluster_names(run["id"])
    ids, clusters, _, _ = ws.assignments(run["id"])
    sizes = ws.cluster_sizes(run["id"])
    unnamed = sorted(c for c in sizes if c not in names and c >= 0)
    if not names:
        raise ConfigError(f"Run {run_id} has no named cluster; take the suggested names "
                          f"with 'imgatlas clusters --run {run_id} --accept', or name them "
                          "with 'imgatlas name-cluster' first.")
    keep = [(int(i), names[int(c)]) for i, c in zip(ids, clusters, strict=True)
            if int(c) in names]
    notes = []
    if unnamed:
        n = sum(sizes[c] for c in unnamed)
        notes.append(f"left out {len(unnamed)} unnamed cluster(s) of run {run_id} "
                     f"({n} images): {', '.join(map(str, unnamed[:10]))}")
    return Labels([i for i, _ in keep], [lab for _, lab in keep], f"run:{run_id}", notes)


def _from_csv(ws: Workspace, path: Path) -> Labels:
    if not path.is_file():
        raise ConfigError(f"--labels must be folders, user, run:ID or a CSV file; "
                          f"{printable(path)} is none of them.")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"Cannot read labels file {printable(path)}: {e}.") from e
    if not rows or "label" not in rows[0] or not ({"path", "sha256"} & set(rows[0])):
        raise ConfigError(f"Labels file {printable(path)} needs a header with 'label' and "
                          "'path' or 'sha256'.")
    images = ws.images()
    by_path: dict[str, int] = {}
    by_sha: dict[str, list[int]] = {}
    for r in images:
        by_path[r.display] = r.id
        if r.root:
            by_path.setdefault(printable(os.path.relpath(r.path, r.root)), r.id)
        if r.sha256:
            by_sha.setdefault(r.sha256, []).append(r.id)
    ids, labels, unknown = [], [], []
    for n, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if not label:
            continue
        key = (row.get("path") or "").strip()
        if key:
            p = printable(os.path.abspath(key)) if os.path.isabs(key) else key
            hit = [by_path[p]] if p in by_path else None
        else:
            hit = by_sha.get((row.get("sha256") or "").strip().lower())
        if not hit:
            unknown.append(f"line {n}: {key or row.get('sha256')}")
            continue
        for i in hit:
            ids.append(i)
            labels.append(label)
    if unknown:
        raise ConfigError(f"Labels file {printable(path)} names {len(unknown)} image(s) the "
                          f"workspace does not hold (first: {unknown[0]}).")
    if not ids:
        raise ConfigError(f"Labels file {printable(path)} gives no label.")
    return Labels(ids, labels, f"csv:{printable(path)}")
