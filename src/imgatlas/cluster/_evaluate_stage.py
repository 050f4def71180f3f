"""The evaluate stage: score a recorded clustering run against folder labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.evaluate.metrics import composition, confusion_after_matching, external_scores
from imgatlas.store import Workspace


def evaluate_run(ws: Workspace, run_id: int | None = None) -> dict[str, Any]:
    """Score a run (see :func:`score_run`) and record the scores: as an ``evaluate`` run
    of their own, and, as a headline, with the clustering run."""
    run = ws.get_run(run_id, "cluster")
    with ws.recording("evaluate", {"run": run["id"]}) as rec:
        out = score_run(ws, run["id"])
        rec.results = {k: out[k] for k in ("acc", "nmi", "ari", "purity", "n_images",
                                           "n_clusters", "n_classes")}
    ws.update_results(out["run_id"], {"evaluation": {k: out[k] for k in
                                                     ("acc", "nmi", "ari", "purity")}})
    return out


def score_run(ws: Workspace, run_id: int | None = None,
              assignments: tuple[Any, ...] | None = None) -> dict[str, Any]:
    """ACC (Hungarian), NMI, ARI, purity, confusion matrix and cluster composition.

    Labels only score: they never reach the clustering. Images without a label are left out
    and counted in ``unlabelled``. Reads only: a report can score a run without the lock.
    ``assignments``: the run's, when the caller has read them already.
    """
    run = ws.get_run(run_id, "cluster")
    _ids, clusters, labels, _sil = assignments or ws.assignments(run["id"])
    has = np.array([lab is not None for lab in labels], bool)
    if not has.any():
        raise ConfigError(
            f"Run {run['id']} has no labelled images; scan with --labels-from-folders to "
            "score against folder names.")
    y = np.array([lab for lab in labels if lab is not None])
    p = clusters[has]
    scores = external_scores(y, p)
    M, classes, order = confusion_after_matching(y, p)
    return {
        "run_id": run["id"], **scores, "unlabelled": int((~has).sum()),
        "confusion": {"classes": classes, "clusters": order, "matrix": M.tolist()},
        "composition": {str(c): v for c, v in composition(y, p).items()},
    }
