"""The evaluate-retrieval stage: build code indexes on the workspace's features and score
them with the pure metrics of :mod:`imgatlas.evaluate.retrieval` (relevance = same label)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.errors import ConfigError
from imgatlas.evaluate.retrieval import (
    average_precision,
    pr_curve,
    precision_at,
    reciprocal_rank,
)
from imgatlas.index import CodeIndex
from imgatlas.store import FeatureStore, Workspace, fingerprint


def retrieval_scores(ci: CodeIndex, X: np.ndarray, labels: np.ndarray, *,
                     n_queries: int = 1000, latency_queries: int = 200, seed: int = 0,
                     queries: np.ndarray | None = None, query_labels: np.ndarray | None = None
                     ) -> dict[str, Any]:
    """Retrieval scores on the fitted collection ``X``; relevance = same label.

    Leave-one-out (default): up to ``n_queries`` seeded members each rank the whole
    collection, themselves removed. Held-out (``queries`` given): vectors the index never saw
    rank the whole collection, as a user's new query would. Latency is timed on
    ``latency_queries`` single queries (one vector per search call).
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    counts = {lab: int(c) for lab, c in zip(*np.unique(labels, return_counts=True),
                                            strict=True)}
    if queries is None:
        q = np.sort(rng.choice(n, min(n_queries, n), replace=False))
        QX, qlab = X[q], labels[q]
        _, found = ci.search(ci.member_queries(q, QX), n, prepared=True)
        keep = q[:, None] != found
        ranked = np.stack([row[k][: n - 1] for row, k in zip(found, keep, strict=True)])
        n_rel = np.array([counts[lab] - 1 for lab in qlab])
    else:
        q = np.sort(rng.choice(len(queries), min(n_queries, len(queries)), replace=False))
        QX, qlab = queries[q], query_labels[q]
        _, ranked = ci.search(ci.transform_queries(QX), n, prepared=True)
        n_rel = np.array([counts.get(lab, 0) for lab in qlab])
    # approximate indexes may return fewer than n results, padded with -1: never relevant
    rel = (ranked >= 0) & (labels[np.maximum(ranked, 0)] == qlab[:, None])
    ap = average_precision(rel, n_rel)
    levels, precision = pr_curve(rel, n_rel)
    per_class = {str(lab): float(ap[qlab == lab].mean()) for lab in np.unique(qlab)}
    lat = []
    for i in range(min(latency_queries, len(QX))):
        t = time.perf_counter()
        ci.search(QX[i:i + 1], 10)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "map": float(ap.mean()), "mrr": float(reciprocal_rank(rel).mean()),
        "p_at_10": float(precision_at(rel, 10).mean()),
        "ms_per_query_p50": float(np.percentile(lat, 50)),
        "ms_per_query_p99": float(np.percentile(lat, 99)),
        "pr_curve": {"recall": levels, "precision": precision},
        "per_class_map": per_class, "n_queries": int(len(q)),
    }


# what a retrieval evaluation keeps in its run record (the report's table and PR plot)
RECORDED = ("map", "mrr", "p_at_10", "bytes_per_image", "index_bytes_per_image",
            "ms_per_query_p50", "ms_per_query_p99", "build_seconds", "pr_curve")


def evaluate_retrieval(ws: Workspace, store: FeatureStore, codes: list[str] | None, *,
                       n_queries: int = 1000, seed: int = 0, holdout: float = 0.0
                       ) -> dict[str, Any]:
    """Build each code family on the store's vectors and score it.

    ``holdout=0``: leave-one-out over the whole collection (the codes were fitted on every
    image, the query included, as in the study). ``holdout=0.2``: a seeded 20% of the images
    is kept out of fitting and used as queries against the other 80%: the honest figure for
    queries the index has never seen, and the one that matters for transductive codes
    (+smooth, +learn), whose collection side is fitted on its neighbours.
    """
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--holdout must be in [0, 1). Got {holdout} instead.")
    ids, X = store.read()
    info = ws.display_and_label()
    labels = np.array([info[int(i)][1] for i in ids], dtype=object)
    if any(lab is None for lab in labels):
        raise ConfigError("Retrieval is scored against labels: scan with "
                          "--labels-from-folders (every image needs one).")
    labels = labels.astype(str)
    fit_rows = np.arange(len(ids))
    query_rows = None
    if holdout > 0:
        perm = np.random.default_rng(np.random.SeedSequence([seed, 0x401D])).permutation(
            len(ids))
        n_out = max(1, int(round(holdout * len(ids))))
        query_rows, fit_rows = np.sort(perm[:n_out]), np.sort(perm[n_out:])
    codes = codes or [defaults.codes(len(fit_rows), X.shape[1])]
    out = {"features": store.key, "n_images": int(len(ids)), "codes": {},
           "protocol": "leave-one-out" if query_rows is None else
           f"held-out: {len(query_rows)} queries never fitted vs {len(fit_rows)} images"}
    Xf, lf = X[fit_rows], labels[fit_rows]
    extra = {} if query_rows is None else {"queries": X[query_rows],
                                           "query_labels": labels[query_rows]}
    params = {"codes": codes, "features": store.key, "n_queries": n_queries,
              "holdout": holdout}
    with ws.recording("evaluate-retrieval", params, seed=seed,
                      inputs=fingerprint(ids, store.key)) as run:
        _score_codes(out, codes, Xf, lf, n_queries, seed, extra)
        run.results = {k: {m: v[m] for m in RECORDED if m in v}
                       for k, v in out["codes"].items() if "error" not in v}
    out["run_id"] = run.id
    return out


def _score_codes(out: dict[str, Any], codes: list[str], Xf: np.ndarray, lf: np.ndarray,
                 n_queries: int, seed: int, extra: dict[str, Any]) -> None:
    for spec in codes:
        t = time.perf_counter()
        try:
            ci = CodeIndex(spec, random_state=seed).fit(Xf)
        except ConfigError as e:  # e.g. 512-bit codes on 500 images: say so, go on
            if len(codes) == 1:
                raise
            out["codes"][spec] = {"error": str(e)}
            continue
        build = time.perf_counter() - t
        scores = retrieval_scores(ci, Xf, lf, n_queries=n_queries, seed=seed, **extra)
        size = ci.bytes_per_image()  # serialises the index (and pickles a UMAP model): once
        out["codes"][str(ci.spec_)] = {**scores, "build_seconds": round(build, 3),
                                       "factory": ci.factory_,
                                       "bytes_per_image": size["code_bytes"],
                                       "index_bytes_per_image": size["index_bytes"]}
