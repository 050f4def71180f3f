"""Leaky splits: near-duplicate groups (exact duplicates included) whose members sit in
different splits of a collection laid out as ``train/``, ``val/``, ``test/`` ... folders. A
test image that is a copy of a training image measures memory, not skill.

``inspect --splits train,test`` names the top-level folders that are splits (in that order:
the first is where copies are kept, ``--exclude leaks`` leaves out the others' copies); the
names are recorded with the inspection, and a later inspection without ``--splits`` keeps
the latest ones given.
"""

from __future__ import annotations

import os
from typing import Any

from imgatlas.errors import ConfigError
from imgatlas.inspect._groups import Group
from imgatlas.store import Workspace

LEAKS = "leaks"  # the --exclude name of copies outside the first split


def parse_splits(value: str | list[str] | None) -> list[str]:
    """``"train,test"`` -> the names, each once, in order."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else [
        x for v in value for x in str(v).split(",")]
    names = list(dict.fromkeys(x.strip() for x in items if x.strip()))
    if len(names) < 2:
        raise ConfigError(f"--splits names two or more folders (train,test). Got {value!r}.")
    bad = [n for n in names if "/" in n or n in (".", "..")]
    if bad:
        raise ConfigError(f"--splits names top-level folders of the collection; {bad[0]!r} "
                          "is not one.")
    return names


def check_splits(ws: Workspace, names: list[str]) -> None:
    """Every name must be a top-level folder of a scanned folder: a one-line refusal
    naming the first that is not, and the folders there are."""
    present = set(split_of_images(ws, names).values())
    missing = [n for n in names if n not in present]
    if missing:
        tops = sorted({top for _, path, root in ws.usable_paths()
                       if (top := _top(path, root))})
        raise ConfigError(f"--splits names {missing[0]!r}, which is not a top-level folder of "
                          f"the collection (it has: {', '.join(tops[:10]) or 'none'}).")


def recorded_splits(ws: Workspace) -> list[str]:
    """The split names of the latest inspection that was given them ([] if none)."""
    for run in reversed(ws.runs("inspect")):
        if run["status"] == "done" and run["params"].get("splits"):
            return list(run["params"]["splits"])
    return []


def split_of_images(ws: Workspace, names: list[str]) -> dict[int, str]:
    """``{image id: split name}`` for the usable images under one of ``names``."""
    wanted = set(names)
    out = {}
    for i, path, root in ws.usable_paths():
        top = _top(path, root)
        if top in wanted:
            out[i] = top
    return out


def _top(path: bytes, root: bytes | None) -> str | None:
    if not root:
        return None
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep.encode())
    return os.fsdecode(parts[0]) if len(parts) > 1 and parts[0] != b".." else None


def find_leaks(ws: Workspace, found: list[Group], names: list[str] | None = None
               ) -> list[dict[str, Any]]:
    """The groups of ``found`` spanning two or more of the splits (``names``, default: the
    recorded ones): ``[{"ids", "members", "splits", "similarity"}]``, members (printable
    paths) parallel to their split names, the first split's first."""
    names = recorded_splits(ws) if names is None else names
    if not names:
        return []
    split = split_of_images(ws, names)
    order = {n: k for k, n in enumerate(names)}
    leaks = []
    for g in found:
        members = [i for i in (g.keep, *g.copies) if i in split]
        if len({split[i] for i in members}) < 2:
            continue
        members.sort(key=lambda i: order[split[i]])
        leaks.append({"ids": members, "splits": [split[i] for i in members],
                      "similarity": round(g.similarity, 4)})
    if leaks:
        display = ws.display_and_label({i for lk in leaks for i in lk["ids"]})
        for lk in leaks:
            lk["members"] = [display[i][0] for i in lk["ids"]]
    return leaks


def leaked_copies(ws: Workspace, found: list[Group]) -> set[int]:
    """What ``--exclude leaks`` leaves out: in each leaking group, the members outside the
    first split it reaches (they are copies of something the first split holds)."""
    out: set[int] = set()
    for lk in find_leaks(ws, found):
        first = lk["splits"][0]
        out |= {i for i, s in zip(lk["ids"], lk["splits"], strict=True) if s != first}
    return out
