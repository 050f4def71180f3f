"""A collection that grew a little keeps its clustering: the new images join the clusters of
their nearest neighbours, as a run derived from the earlier one (the person's corrections
and names carry over), instead of clustering everything again.

Refitting is what a person asks for (``run --refit``, or ``cluster`` itself) or what the
collection's growth calls for: more than ``defaults.REFIT_GROWTH`` of the clustered images
new or gone, the groups themselves may have changed."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas import defaults
from imgatlas.store import FeatureStore, Workspace, fingerprint

NEIGHBOURS = 10  # a new image joins the cluster with the most similarity among these


def grown_run(ws: Workspace, store: FeatureStore, params: dict[str, Any], seed: int,
              ids: np.ndarray) -> dict[str, Any] | None:
    """The clustering of ``ids`` derived from the latest run asked with ``params`` and
    ``seed`` (any number of images), when few enough images are new or gone; None when
    there is no such run or the collection changed too much (cluster again)."""
    from imgatlas.cluster._stage import latest_correction

    asked = {k: v for k, v in params.items() if k != "n_images"}
    base = None
    for r in reversed(ws.runs("cluster")):
        p = r["params"]
        if r["status"] == "done" and "derived_from" not in p and p.get("seed") == seed \
                and all(p.get(k) == v for k, v in asked.items()):
            base = r
            break
    if base is None:
        return None
    run = latest_correction(ws, base)
    old_ids, old_labels, _, old_sil = ws.assignments(run["id"])
    new = np.setdiff1d(ids, old_ids)
    gone = np.setdiff1d(old_ids, ids)
    if not len(new) and not len(gone):
        return {**run["results"], "reused": True}
    if len(new) + len(gone) > defaults.REFIT_GROWTH * len(old_ids):
        return None
    kept = np.isin(old_ids, ids)
    labels = dict(zip(old_ids[kept].tolist(), old_labels[kept].tolist(), strict=True))
    if len(new):
        labels.update(zip(new.tolist(), nearest_clusters(
            store, old_ids[kept], old_labels[kept], new).tolist(), strict=True))
    all_ids = np.array(sorted(labels), dtype=np.int64)
    from imgatlas.edit import derive_run

    edit = {"op": "grow", "added": int(len(new)), "removed": int(len(gone)),
            "rule": f"each new image joins the cluster with the most similarity among its "
                    f"{NEIGHBOURS} nearest clustered images"}
    # the clusters did not change: the earlier images keep their silhouettes (no n^2 pass)
    sil = dict(zip(old_ids[kept].tolist(), old_sil[kept].tolist(), strict=True))
    known = np.array([sil.get(i, np.nan) for i in all_ids.tolist()])
    return derive_run(ws, run, all_ids, np.array([labels[i] for i in all_ids.tolist()]),
                      edit, ws.cluster_names(run["id"]),
                      inputs=fingerprint(all_ids, store.key),
                      silhouettes=known if len(gone) == 0 else None)


def nearest_clusters(store: FeatureStore, ids: np.ndarray, labels: np.ndarray,
                     new: np.ndarray) -> np.ndarray:
    """Each new image's cluster: the one with the largest summed cosine similarity among its
    ``NEIGHBOURS`` nearest clustered images (noise, -1, may win too)."""
    import faiss

    _, X = store.read(ids)
    _, Q = store.read(new)
    X = normalize(np.asarray(X, np.float32))
    Q = normalize(np.asarray(Q, np.float32))
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    sims, rows = index.search(Q, min(NEIGHBOURS, len(X)))
    out = np.empty(len(new), dtype=np.int64)
    for j in range(len(new)):
        votes: dict[int, float] = {}
        for s, r in zip(sims[j], rows[j], strict=True):
            if r >= 0:
                c = int(labels[r])
                votes[c] = votes.get(c, 0.0) + float(s)
        out[j] = max(votes, key=votes.get)
    return out

