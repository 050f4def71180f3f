"""A training set out: the labelled collection as ``OUT/<split>/<label>/<file>`` (the
ImageFolder layout that torchvision's ``ImageFolder`` and Hugging Face's ``imagefolder``
loader read as they are) and ``OUT/manifest.csv`` (every usable image: its split, or why it
was left out; its label, source, sha256 and size).

Splits are stratified per label and never cut a near-duplicate group (:mod:`._splits`).
By default the near-duplicate copies and every image inspect flagged stay out, named in the
manifest with the reason. The whole tree is written into a temporary folder beside ``OUT``
and moved into place at the end: a failure leaves nothing half-written, and the source is
only read (links) or copied.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from imgatlas.errors import ConfigError
from imgatlas.export._names import safe_name
from imgatlas.export._plan import _free_name
from imgatlas.export._splits import SPLIT_NAMES, assign_splits, parse_split
from imgatlas.export._write import MODES, check_out, place
from imgatlas.store import Status, Workspace

DATASET_MANIFEST = "manifest.csv"
DATASET_COLUMNS = ["id", "split", "label", "file_name", "source_path", "left_out", "sha256",
                   "width", "height", "near_duplicate_group"]


def export_dataset(ws: Workspace, out: Path, *, split: str = "0.7,0.15,0.15",
                   labels: str = "folders", exclude: str | list[str] | None = None,
                   seed: int = 0, mode: str = "link") -> dict[str, Any]:
    """Write the labelled images of ``ws`` as a train/val/test (or train/test) dataset
    under ``out`` (the module doc). ``exclude``: what inspect found to leave out (None: all
    of it). Returns ``{"out", "manifest", "splits": {split: n}, "labels": {label: {split:
    n}}, "left_out": {why: n}, "notes", ...}``."""
    from imgatlas.classify import resolve_labels  # the labels train takes, from the same sources

    t0 = time.perf_counter()
    shares = parse_split(split)
    names = SPLIT_NAMES[len(shares)]
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}. Got {mode!r} instead.")
    lab = resolve_labels(ws, labels)
    label_of = dict(zip(lab.ids, lab.labels, strict=True))
    rows = {r.id: r for r in ws.images(Status.OK)}
    real = _empty_out(Path(out), sorted({r.root for r in rows.values() if r.root}), ws.path)
    why, groups, notes = _left_out(ws, exclude, rows)
    for i in rows:
        if i not in why and i not in label_of:
            why[i] = "no label"
    keep = [i for i in sorted(rows) if i not in why]
    if not keep:
        why_counts = Counter(w.split(":")[0] for w in why.values())
        raise ConfigError("No labelled image is left to export: " + ", ".join(
            f"{n} {w}" for w, n in why_counts.most_common()) + " (--exclude none keeps "
            "what inspect set apart; --labels says where labels come from).")
    in_group = {i for g in groups for i in g}
    units = [[i for i in g if i not in why] for g in groups]
    units = [u for u in units if u] + [[i] for i in keep if i not in in_group]
    split_of, split_notes = assign_splits(units, label_of, shares, seed)
    group_no = {i: n for n, g in enumerate(groups, 1) for i in g}
    params = {"out": str(real), "as": "dataset", "split": list(shares), "labels": lab.source,
              "exclude": exclude, "mode": mode, "seed": seed}
    with ws.recording("export", params, seed=seed) as rec:
        table = _targets(keep, rows, label_of, split_of, names)
        _write(real, table, rows, label_of, split_of, names, why, group_no, mode)
        counts = Counter((label_of[i], names[split_of[i]]) for i in keep)
        rec.results = {
            "out": str(real), "manifest": str(real / DATASET_MANIFEST), "as": "dataset",
            "splits": {s: sum(n for (_, sp), n in counts.items() if sp == s) for s in names},
            "labels": {lb: {s: counts.get((lb, s), 0) for s in names}
                       for lb in sorted({label_of[i] for i in keep})},
            "left_out": dict(sorted(Counter(w.split(":")[0] for w in why.values()).items())),
            "images": len(keep), "mode": mode, "notes": lab.notes + notes + split_notes,
            "seconds": round(time.perf_counter() - t0, 3)}
    return rec.results


def _empty_out(out: Path, roots: list[bytes], workspace: Path) -> Path:
    real = Path(os.path.realpath(out))
    if real.is_dir() and any(real.iterdir()):
        raise ConfigError(f"Refusing to write a dataset into {out}: it is not empty; choose "
                          "a new folder.")
    return check_out(out, roots, workspace)


def _left_out(ws: Workspace, exclude: str | list[str] | None, rows: dict[int, Any]
              ) -> tuple[dict[int, str], list[list[int]], list[str]]:
    """``(why each left-out image is out, near-duplicate groups as id lists, notes)``."""
    from imgatlas.inspect import (
        DUPLICATES,
        LEAKS,
        exclusion_names,
        groups,
        latest_inspection,
        parse_exclude,
    )

    inspected = latest_inspection(ws) is not None
    if exclude is None:
        wanted = [n for n in exclusion_names() if n != LEAKS] if inspected else []
    else:
        wanted = parse_exclude(exclude)
        if LEAKS in wanted:
            raise ConfigError("--exclude leaks is for a collection already split into "
                              "folders; a dataset export keeps every near-duplicate group "
                              "in one split by itself.")
        if wanted and not inspected:
            raise ConfigError(f"--exclude {','.join(wanted)} needs an inspection first: run "
                              f"'imgatlas inspect --workspace {ws.path}'.")
    notes = [] if inspected else [
        "the collection has not been inspected: near-duplicates were not looked for, so "
        "copies may sit in two splits (run 'imgatlas inspect' first)"]
    why: dict[int, str] = {}
    found = groups(ws) if inspected else []
    if DUPLICATES in wanted:
        for g in found:
            keeper = rows[g.keep].display if g.keep in rows else str(g.keep)
            why.update((c, f"duplicates: a near-duplicate of {keeper}") for c in g.copies)
    if inspected:
        for i, flag, _score, _reason in ws.flags():
            if flag in wanted and i not in why:
                why[i] = f"{flag}: flagged by inspect"
    return ({i: w for i, w in why.items() if i in rows},
            [[g.keep, *g.copies] for g in found], notes)


def _targets(keep: list[int], rows: dict[int, Any], label_of: dict[int, str],
             split_of: dict[int, int], names: tuple[str, ...]) -> dict[int, str]:
    """Each exported image's path under ``OUT`` (``split/label/file``), safe on every
    system; one folder name per label, clashes numbered in a fixed order."""
    taken: set[str] = set()
    folder = {lb: _free_name(taken, safe_name(lb, "unlabelled"))
              for lb in sorted({label_of[i] for i in keep})}
    used: dict[str, set[str]] = {}
    out = {}
    for i in sorted(keep, key=lambda i: rows[i].path):
        where = f"{names[split_of[i]]}/{folder[label_of[i]]}"
        name = _free_name(used.setdefault(where.lower(), set()),
                          safe_name(os.path.basename(rows[i].path), f"image-{i}"))
        out[i] = f"{where}/{name}"
    return out


def _write(real: Path, table: dict[int, str], rows: dict[int, Any], label_of: dict[int, str],
           split_of: dict[int, int], names: tuple[str, ...], why: dict[int, str],
           group_no: dict[int, int], mode: str) -> None:
    """Everything into a temporary folder beside ``real``, then moved into place."""
    tmp = real.parent / f".{real.name}.imgatlas-{os.getpid()}.tmp"
    real.parent.mkdir(parents=True, exist_ok=True)
    try:
        for i, target in table.items():
            place(rows[i].path, rows[i].display, tmp / target, mode)
        with open(tmp / DATASET_MANIFEST, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(DATASET_COLUMNS)
            for i in sorted(rows):
                r = rows[i]
                w.writerow([i, names[split_of[i]] if i in table else "",
                            label_of.get(i, ""), table.get(i, ""), r.display, why.get(i, ""),
                            r.sha256 or "", r.width or "", r.height or "",
                            group_no.get(i, "")])
        if real.is_dir():
            real.rmdir()  # empty: checked before
        os.rename(tmp, real)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
