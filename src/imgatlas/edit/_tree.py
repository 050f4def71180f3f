"""The merge tree of a run's clusters: Ward linkage of their centres (weighted by size), so
that a person can ask for fewer groups without clustering again."""

from __future__ import annotations

from typing import Any

import numpy as np


def merge_tree(Z: np.ndarray, labels: np.ndarray) -> dict[str, Any] | None:
    """``{"clusters": [ids], "merges": [[a, b, height], ...]}``: the clusters (noise left
    out) and, step by step, which two groups join (a group is a cluster id, or
    ``"g<step>"`` for an earlier merge). Ward's criterion on the centres, each weighted by
    its cluster's size: the increase in within-group sum of squares of each merge."""
    ids = sorted(int(c) for c in np.unique(labels) if c >= 0)
    if len(ids) < 2:
        return None
    names: list[Any] = list(ids)
    centres = np.stack([Z[labels == c].mean(axis=0) for c in ids]).astype(np.float64)
    sizes = np.array([(labels == c).sum() for c in ids], dtype=np.float64)
    merges = []
    for step in range(len(ids) - 1):
        sq = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        cost = sizes[:, None] * sizes[None, :] / (sizes[:, None] + sizes[None, :]) * sq
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
        a, b = min(a, b), max(a, b)
        merges.append([names[a], names[b], round(float(cost[a, b]), 6)])
        merged = (sizes[a] * centres[a] + sizes[b] * centres[b]) / (sizes[a] + sizes[b])
        centres[a], sizes[a], names[a] = merged, sizes[a] + sizes[b], f"g{step}"
        keep = np.arange(len(names)) != b
        centres, sizes = centres[keep], sizes[keep]
        names = [x for i, x in enumerate(names) if i != b]
    return {"clusters": ids, "merges": merges}


def cut(tree: dict[str, Any], k: int) -> dict[int, int]:
    """Which cluster each cluster joins when the tree is cut into ``k`` groups:
    ``{cluster: the smallest cluster id of its group}``."""
    members: dict[Any, list[int]] = {c: [c] for c in tree["clusters"]}
    for step, (a, b, _h) in enumerate(tree["merges"][: max(0, len(tree["clusters"]) - k)]):
        members[f"g{step}"] = members.pop(a) + members.pop(b)
    return {c: min(group) for group in members.values() for c in group}
