"""Where each usable image goes in an exported folder tree.

Every usable image appears exactly once:

- a near-duplicate copy (not the member kept) goes to ``_near-duplicates/<group>/``;
- else a flagged image goes to ``_review/<flag>/`` (its first flag in the order of
  :data:`REVIEW_ORDER`: what makes an image least usable first);
- else it goes to its cluster's folder, named by the cluster's name (``cluster-N`` when it
  has none); noise and images the run did not place go to ``_unsorted``.

Folder and file names are made safe on every system (:mod:`imgatlas.export._names`), and
clashes (two files of one name in a folder, two clusters of one name, names that differ
only in case) are numbered in a fixed order, so the same workspace always gives the same
tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from imgatlas.export._names import numbered, safe_name
from imgatlas.inspect import groups, latest_inspection
from imgatlas.store import Status, Workspace

DUPLICATES_DIR = "_near-duplicates"
REVIEW_DIR = "_review"
UNSORTED_DIR = "_unsorted"
# a flagged image is reviewed for the first of its flags in this order
REVIEW_ORDER = ("dark", "bright", "low_information", "blurry", "tiny", "odd_aspect",
                "outlier", "grayscale")


@dataclass(frozen=True)
class Placement:
    image_id: int
    source: bytes
    display: str
    target: str  # relative to the export folder, '/'-separated
    cluster: int | None
    cluster_name: str | None
    name_kind: str  # user | suggested | default | '' (no cluster)
    flags: tuple[str, ...]
    group: int | None  # near-duplicate group number (1 = largest)
    role: str  # keep | copy | ''
    sha256: str | None
    width: int | None
    height: int | None

    @property
    def folder(self) -> str:
        return self.target.rsplit("/", 1)[0]


def plan_export(ws: Workspace, run_id: int, cluster_names: dict[int, str],
                name_kinds: dict[int, str] | None = None) -> list[Placement]:
    """Every usable image's place (see the module docstring), in a fixed order;
    ``name_kinds``: whether each name is a person's (``user``) or a ``suggested`` one."""
    kinds = name_kinds or {}
    ids, clusters, _labels, _ = ws.assignments(run_id)
    cluster_of = dict(zip(ids.tolist(), clusters.tolist(), strict=True))
    flags: dict[int, list[str]] = {}
    group_of: dict[int, tuple[int, str]] = {}
    if latest_inspection(ws) is not None:
        for i, f, _s, _r in ws.flags():
            flags.setdefault(i, []).append(f)
        for n, g in enumerate(groups(ws), 1):
            group_of[g.keep] = (n, "keep")
            group_of.update((c, (n, "copy")) for c in g.copies)
    cluster_dirs = _cluster_folders(sorted({c for c in cluster_of.values() if c >= 0}),
                                    cluster_names)
    rows = sorted(ws.images(Status.OK), key=lambda r: r.path)
    keep_name = {}
    for r in rows:
        if group_of.get(r.id, (0, ""))[1] == "keep":
            keep_name[group_of[r.id][0]] = safe_name(os.path.basename(r.path))
    used: dict[str, set[str]] = {}
    out = []
    for r in rows:
        c = cluster_of.get(r.id)
        mine = sorted(flags.get(r.id, []), key=_review_rank)
        group, role = group_of.get(r.id, (None, ""))
        if role == "copy":
            stem = keep_name[group].rsplit(".", 1)[0]
            folder = f"{DUPLICATES_DIR}/{safe_name(f'{group:04d}-{stem}')}"
        elif mine:
            folder = f"{REVIEW_DIR}/{mine[0]}"
        elif c is None or c < 0:
            folder = UNSORTED_DIR
        else:
            folder = cluster_dirs[c]
        name = _free_name(used.setdefault(folder.lower(), set()),
                          safe_name(os.path.basename(r.path), f"image-{r.id}"))
        out.append(Placement(
            image_id=r.id, source=r.path, display=r.display, target=f"{folder}/{name}",
            cluster=c, cluster_name=_cluster_name(c, cluster_names),
            name_kind="" if c is None or c < 0 else kinds.get(c, "default"), flags=tuple(mine),
            group=group, role=role, sha256=r.sha256, width=r.width, height=r.height))
    return out


def _review_rank(flag: str) -> int:
    return REVIEW_ORDER.index(flag) if flag in REVIEW_ORDER else len(REVIEW_ORDER)


def _cluster_name(c: int | None, names: dict[int, str]) -> str | None:
    if c is None or c < 0:
        return None
    return names.get(c) or f"cluster-{c}"


def _cluster_folders(clusters: list[int], names: dict[int, str]) -> dict[int, str]:
    """One folder per cluster, by its name; clashes (also with the special folders, also
    in case only) numbered in cluster order."""
    taken = {DUPLICATES_DIR.lower(), REVIEW_DIR.lower(), UNSORTED_DIR.lower()}
    out = {}
    for c in clusters:
        base = safe_name(names.get(c) or f"cluster-{c}", f"cluster-{c}")
        out[c] = _free_name(taken, base)
    return out


def _free_name(taken: set[str], name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` ... the first not in ``taken`` (compared without
    case: macOS and Windows folders do not tell ``A.jpg`` from ``a.jpg``); marks it taken."""
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = numbered(name, n)
    taken.add(candidate.lower())
    return candidate
