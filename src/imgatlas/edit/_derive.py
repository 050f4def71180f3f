"""A correction is a new cluster run derived from the one it edits: the same images, the
same space, some images in other clusters. The edited run stays as it was; the new run
records where it came from and what changed, so undoing it is returning to its parent."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.evaluate.internal import centre_distances, internal_validation
from imgatlas.store import Workspace

UNDONE = "undone"  # the status of a derived run that was undone


def current_run(ws: Workspace, run_id: int | None) -> dict[str, Any]:
    """The cluster run to edit: ``run_id``, or the latest finished one."""
    run = ws.get_run(run_id, "cluster")
    if run["status"] != "done":
        raise ConfigError(f"Run {run['id']} is {run['status']}; edit a finished run.")
    return run


def derive_run(ws: Workspace, parent: dict[str, Any], ids: np.ndarray, labels: np.ndarray,
               edit: dict[str, Any], names: dict[int, str], inputs: str | None = None,
               silhouettes: np.ndarray | None = None) -> dict[str, Any]:
    """Record a run with ``labels`` for ``ids`` (the parent's images, or, with ``inputs``
    their fingerprint, a grown set), derived from ``parent`` by ``edit`` (``{"op": ...,
    ...}``), the clusters keeping ``names``. Its centre distances, silhouettes and merge
    tree are computed in the parent's clustering space; ``silhouettes`` (per ``ids``, NaN
    where unknown) are kept where known."""
    from imgatlas.edit._tree import merge_tree
    from imgatlas.report import clustering_space, grown_space

    t0 = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    # the parent's kept space, new images placed among their neighbours; a parent from an
    # earlier imgatlas has its reduction fitted again
    placed = grown_space(ws, parent, ids)
    grown = placed is not None and placed[1]
    Z = placed[0] if placed is not None else clustering_space(ws, parent, ids)[1]
    internal, sil = internal_validation(Z, labels, parent["params"].get("seed") or 0,
                                        known=silhouettes)
    params = {k: v for k, v in parent["params"].items()
              if k not in ("estimators", "seed", "inputs")}
    params.update({"derived_from": parent["id"], "edit": edit, "n_images": int(len(ids))})
    sizes = {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True),
                                            strict=True)}
    with ws.recording("cluster", params, seed=parent["params"].get("seed"),
                      inputs=inputs or parent["params"].get("inputs")) as run:
        ws.record_assignments(run.id, ids, labels, sil, centre_distances(Z, labels))
        if grown:  # other images than its parent's: its own space (a correction shares it)
            ws.save_space(run.id, ids, Z)
        for c, name in names.items():
            if c in sizes and c >= 0:
                ws.name_cluster(run.id, c, name)
        parent_res = parent["results"]
        run.results = {
            "run_id": run.id, "n_images": int(len(ids)), "method": parent_res["method"],
            "reduce": parent_res["reduce"], "k": parent_res.get("k"),
            "n_clusters": int(len([c for c in sizes if c >= 0])), "sizes": sizes,
            "internal": internal, "reduced_dim": int(Z.shape[1]),
            "estimator": parent_res.get("estimator", {}), "k_selection": None,
            "derived_from": parent["id"], "edit": edit,
            "tree": merge_tree(Z, labels),
            "timings": {"total": round(time.perf_counter() - t0, 3)}, "warnings": [],
        }
    return run.results


def undo(ws: Workspace, run_id: int | None = None) -> dict[str, Any]:
    """Undo a correction: the derived run ``run_id`` (default: the latest cluster run) is
    marked undone, so its parent is the latest again, exactly as it was."""
    run = current_run(ws, run_id)
    parent = run["params"].get("derived_from")
    if parent is None:
        raise ConfigError(f"Run {run['id']} is not a correction of another run; there is "
                          "nothing to undo.")
    ws.set_run_status(run["id"], UNDONE)
    back = ws.get_run(parent, "cluster")
    return {"undone": run["id"], "run_id": back["id"], "status": back["status"],
            "edit": run["params"].get("edit")}
