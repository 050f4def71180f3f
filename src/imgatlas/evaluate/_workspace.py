"""The evaluate stage: score a recorded clustering run against folder labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.evaluate.metrics import composition, confusion_after_matching, external_scores
from imgatlas.store.workspace import Workspace


def assignments(ws: Workspace, run_id: int) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """``(image_ids, clusters, labels)`` of a run, in image-id order."""
    rows = ws.con.execute(
        "SELECT a.image_id, a.cluster, i.label FROM assignments a JOIN images i "
        "ON i.id = a.image_id WHERE a.run_id=? ORDER BY a.image_id", (run_id,)).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    clusters = np.array([r[1] for r in rows], dtype=np.int64)
    return ids, clusters, [r[2] for r in rows]


def evaluate_run(ws: Workspace, run_id: int | None = None) -> dict[str, Any]:
    """Score a run (see :func:`score_run`) and record the headline scores with it."""
    out = score_run(ws, run_id)
    ws.update_results(out["run_id"], {"evaluation": {k: out[k] for k in
                                                     ("acc", "nmi", "ari", "purity")}})
    return out


def score_run(ws: Workspace, run_id: int | None = None) -> dict[str, Any]:
    """ACC (Hungarian), NMI, ARI, purity, confusion matrix and cluster composition.

    Labels only score: they never reach the clustering. Images without a label are left out
    and counted in ``unlabelled``. Reads only: a report can score a run without the lock.
    """
    run = ws.run(run_id, "cluster")
    ids, clusters, labels = assignments(ws, run["id"])
    has = np.array([lab is not None for lab in labels], bool)
    if not has.any():
        raise ConfigError(
            f"Run {run['id']} has no labelled images; scan with --labels-from-folders to "
            "score against folder names.")
    y = np.array([lab for lab in labels if lab is not None])
    p = clusters[has]
    scores = external_scores(y, p)
    M, classes, order = confusion_after_matching(y, p)
    out = {
        "run_id": run["id"], **scores, "unlabelled": int((~has).sum()),
        "confusion": {"classes": classes, "clusters": order, "matrix": M.tolist()},
        "composition": {str(c): v for c, v in composition(y, p).items()},
    }
    return out
