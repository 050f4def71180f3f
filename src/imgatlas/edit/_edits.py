"""Corrections a person makes to a clustering: move images, merge clusters, split one, set
images aside, or ask for fewer or more groups. Each makes a derived run
(:func:`~imgatlas.edit._derive.derive_run`); :func:`~imgatlas.edit._derive.undo` takes it
back."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.edit._derive import current_run, derive_run
from imgatlas.edit._tree import cut
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace

NEW = "new"  # move's target: a new cluster
SET_ASIDE = -1  # set-aside images belong to no cluster (as density methods' noise)


def _state(ws: Workspace, run_id: int | None) -> tuple[dict[str, Any], np.ndarray,
                                                        np.ndarray, dict[int, str]]:
    run = current_run(ws, run_id)
    ids, labels, _, _ = ws.assignments(run["id"])
    return run, ids, labels.copy(), ws.cluster_names(run["id"])


def _rows(ids: np.ndarray, image_ids: list[int], run_id: int) -> np.ndarray:
    if not image_ids:
        raise ConfigError("Select at least one image.")
    pos = np.searchsorted(ids, image_ids)
    pos = np.minimum(pos, len(ids) - 1)
    bad = [i for i, p in zip(image_ids, pos, strict=True) if ids[p] != i]
    if bad:
        raise ConfigError(f"Image {bad[0]} is not in run {run_id}.")
    return pos


def _check_clusters(labels: np.ndarray, clusters: list[int], run_id: int) -> None:
    have = set(np.unique(labels).tolist())
    missing = [c for c in clusters if c not in have or c < 0]
    if missing:
        raise ConfigError(f"Run {run_id} has no cluster {missing[0]}.")


def move(ws: Workspace, image_ids: list[int], to: int | str, run_id: int | None = None
         ) -> dict[str, Any]:
    """Move images to cluster ``to`` of the run, or to a new cluster (``to="new"``)."""
    run, ids, labels, names = _state(ws, run_id)
    rows = _rows(ids, list(image_ids), run["id"])
    if to == NEW:
        target = int(labels.max()) + 1
    else:
        target = int(to)
        _check_clusters(labels, [target], run["id"])
    labels[rows] = target
    edit = {"op": "move", "images": sorted(int(i) for i in image_ids), "to": target}
    return derive_run(ws, run, ids, labels, edit, names)


def set_aside(ws: Workspace, image_ids: list[int], run_id: int | None = None
              ) -> dict[str, Any]:
    """Take images out of every cluster (junk): they go to no cluster."""
    run, ids, labels, names = _state(ws, run_id)
    labels[_rows(ids, list(image_ids), run["id"])] = SET_ASIDE
    edit = {"op": "set_aside", "images": sorted(int(i) for i in image_ids)}
    return derive_run(ws, run, ids, labels, edit, names)


def merge(ws: Workspace, clusters: list[int], run_id: int | None = None) -> dict[str, Any]:
    """Merge clusters into the first one given (which keeps its name)."""
    if len(set(clusters)) < 2:
        raise ConfigError("Give at least two clusters to merge.")
    run, ids, labels, names = _state(ws, run_id)
    _check_clusters(labels, clusters, run["id"])
    into = int(clusters[0])
    labels[np.isin(labels, clusters)] = into
    edit = {"op": "merge", "clusters": [int(c) for c in clusters], "into": into}
    return derive_run(ws, run, ids, labels, edit, names)


def split(ws: Workspace, cluster: int, k: int = 2, run_id: int | None = None
          ) -> dict[str, Any]:
    """Split a cluster in ``k`` by clustering its members again (k-means in the run's own
    reduction, fitted on them alone: the house-photo study's re-clustering of its largest
    cluster). The largest part keeps the cluster's id and name; the others get new ids."""
    run, ids, labels, names = _state(ws, run_id)
    _check_clusters(labels, [cluster], run["id"])
    labels, parts = _split_labels(ws, run, ids, labels, cluster, k)
    edit = {"op": "split", "cluster": int(cluster), "k": int(k), "into": parts}
    return derive_run(ws, run, ids, labels, edit, names)


def _split_labels(ws: Workspace, run: dict[str, Any], ids: np.ndarray, labels: np.ndarray,
                  cluster: int, k: int) -> tuple[np.ndarray, list[int]]:
    from imgatlas.cluster import build_method
    from imgatlas.reduce import make_reducer
    from imgatlas.report import clustering_space

    rows = np.flatnonzero(labels == cluster)
    if k < 2 or k > len(rows):
        raise ConfigError(f"Cluster {cluster} has {len(rows)} images: split it in 2 to "
                          f"{len(rows)} parts. Got {k} instead.")
    seed = run["params"].get("seed") or 0
    X, _ = clustering_space(ws, run, ids[rows], reduce=False)
    reducer = make_reducer(run["params"].get("reduce", "none"), random_state=seed)
    try:
        Z = reducer.fit_transform(X) if reducer is not None else X
    except ValueError:  # too few members for the run's reduction: their plain features
        Z = X
    parts = np.asarray(build_method("kmeans", k, {}, seed).fit(
        np.ascontiguousarray(Z, dtype=np.float32)).labels_)
    order = np.argsort(-np.bincount(parts, minlength=k), kind="stable")  # largest keeps id
    new_ids = {int(order[0]): int(cluster)}
    nxt = int(labels.max()) + 1
    for p in order[1:]:
        new_ids[int(p)] = nxt
        nxt += 1
    labels = labels.copy()
    labels[rows] = [new_ids[int(p)] for p in parts]
    return labels, sorted(set(new_ids.values()))


def regroup(ws: Workspace, k: int, run_id: int | None = None) -> dict[str, Any]:
    """Fewer or more groups without clustering again: fewer by cutting the run's merge tree
    (the closest clusters join; the group keeps its smallest id and that cluster's name),
    more by splitting, one at a time, the cluster whose members are most spread out."""
    run, ids, labels, names = _state(ws, run_id)
    n = int(len([c for c in np.unique(labels) if c >= 0]))
    if k < 1:
        raise ConfigError(f"--k must be at least 1. Got {k} instead.")
    if k == n:
        raise ConfigError(f"Run {run['id']} has {n} clusters already.")
    if k < n:
        tree = run["results"].get("tree") or _tree_of(ws, run, ids, labels)
        joins = cut(tree, k)
        labels = np.array([joins.get(int(c), int(c)) for c in labels], dtype=np.int64)
        edit = {"op": "regroup", "k": int(k), "from": n}
        return derive_run(ws, run, ids, labels, edit, names)
    from imgatlas.report import clustering_space

    _, Z = clustering_space(ws, run, ids)
    for _ in range(k - n):
        labels, _parts = _split_labels(ws, run, ids, labels, _loosest(Z, labels, run["id"]),
                                       2)
    edit = {"op": "regroup", "k": int(k), "from": n}
    return derive_run(ws, run, ids, labels, edit, names)


def _tree_of(ws: Workspace, run: dict[str, Any], ids: np.ndarray, labels: np.ndarray
             ) -> dict[str, Any]:
    from imgatlas.edit._tree import merge_tree
    from imgatlas.report import clustering_space

    _, Z = clustering_space(ws, run, ids)
    tree = merge_tree(Z, labels)
    if tree is None:
        raise ConfigError(f"Run {run['id']} has one cluster: nothing to merge.")
    return tree


def _loosest(Z: np.ndarray, labels: np.ndarray, run_id: int) -> int:
    """The cluster with the largest within-cluster sum of squares in the run's space (what a
    split lowers most), among those of at least 2 images."""
    best, worst = None, -1.0
    for c in np.unique(labels):
        rows = labels == c
        if c < 0 or rows.sum() < 2:
            continue
        sse = float(((Z[rows] - Z[rows].mean(axis=0)) ** 2).sum())
        if sse > worst:
            best, worst = int(c), sse
    if best is None:
        raise ConfigError(f"Run {run_id} has no cluster of 2 or more images to split.")
    return best
