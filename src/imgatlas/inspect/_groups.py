"""Near-duplicate pairs -> groups, each with the member to keep."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from imgatlas.store import Workspace

SOFTER = 1.25  # edges this many times wider than the sharpest copy's: visibly softer


@dataclass(frozen=True)
class Group:
    keep: int  # image id
    copies: list[int]  # image ids, most alike first
    similarity: float  # the weakest pair that holds the group together
    evidence: dict[int, str]  # copy id -> what decided it



def near_duplicate_groups(ws: Workspace, edge_widths: dict[int, float] | None = None
                          ) -> list[Group]:
    """Connected groups of the recorded pairs, largest first. The member to keep is the
    largest (pixels), then one not visibly softer than the sharpest (``edge_widths``), then
    the oldest file (an original is usually older than its copies), then the larger file."""
    pairs = ws.duplicate_pairs()
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, *_ in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    facts = ws.image_facts(list(parent))
    widths = {i: w for i, w in (edge_widths or {}).items()
              if w is not None and not math.isnan(w)}

    def ranker(ids: list[int]) -> Callable[[int], tuple]:
        known = [widths[i] for i in ids if i in widths]
        sharpest = min(known) if known else 0.0

        def rank(i: int) -> tuple:
            w, h, _fmt, size, mtime = facts.get(i, (0, 0, "", 0, 0))
            # softer than the sharpest copy by what a person sees (the blurry check's
            # ratio), not by measurement noise between a copy and its re-exposure
            soft = widths.get(i, sharpest) >= SOFTER * sharpest if known else False
            return ((w or 0) * (h or 0), not soft, -(mtime or 0), size or 0, -i)

        return rank

    weakest: dict[int, float] = {}
    direct: dict[tuple[int, int], tuple[float, str]] = {}
    for a, b, sim, _cos, _dist, evidence in pairs:
        root = find(a)
        weakest[root] = min(weakest.get(root, 1.0), sim)
        direct[(a, b)] = direct[(b, a)] = (sim, evidence)
    groups = []
    for root, ids in members.items():
        keep = max(ids, key=ranker(ids))
        link = {i: direct.get((i, keep), (0.0, "alike through another copy")) for i in ids}
        copies = sorted((i for i in ids if i != keep), key=lambda i: (-link[i][0], i))
        groups.append(Group(keep=keep, copies=copies, similarity=weakest[root],
                            evidence={i: link[i][1] for i in copies}))
    groups.sort(key=lambda g: (-len(g.copies), g.keep))
    return groups
