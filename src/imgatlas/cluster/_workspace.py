"""The cluster stage: features from the workspace -> a recorded clustering run."""

from __future__ import annotations

import hashlib
import time
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from imgatlas.cluster._methods import (
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
)
from imgatlas.cluster._scan import SCANClusterer
from imgatlas.cluster._select import sweep_k
from imgatlas.errors import ConfigError
from imgatlas.evaluate.metrics import hopkins
from imgatlas.reduce import make_reducer
from imgatlas.store.features import FeatureStore
from imgatlas.store.workspace import Workspace

METHODS = ("kmeans", "gmm", "dbscan", "hdbscan", "kmedoids", "agglomerative", "scan")
K_METHODS = ("kmeans", "gmm", "kmedoids", "agglomerative", "scan")
SILHOUETTE_ALL_BELOW = 20_000  # per-image silhouettes are O(n^2); above, a seeded sample
HOPKINS_DIM = 10  # Hopkins saturates in high dimensions: computed on a PCA projection


def build_method(method: str, k: int | None, options: dict[str, Any], seed: int
                 ) -> BaseEstimator:
    """The estimator for ``method`` with ``k`` clusters and method-specific ``options``."""
    opts = {key: v for key, v in options.items() if v is not None}
    if method == "kmeans":
        return KMeansClusterer(k or 8, random_state=seed, **opts)
    if method == "gmm":
        return GMMClusterer(k or 8, random_state=seed, **opts)
    if method == "kmedoids":
        return KMedoidsClusterer(k or 8, random_state=seed, **opts)
    if method == "agglomerative":
        if "distance_threshold" in opts:
            return Agglomerative(None, random_state=seed, **opts)
        return Agglomerative(k or 8, random_state=seed, **opts)
    if method == "scan":
        return SCANClusterer(k or 8, random_state=seed, **opts)
    if method == "dbscan":
        return DBSCANClusterer(**opts)
    if method == "hdbscan":
        return HDBSCANClusterer(**opts)
    raise ConfigError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")


def select_images(ws: Workspace, ids: np.ndarray, within: tuple[int, int] | None,
                  exclude: list[tuple[int, list[int]]]) -> np.ndarray:
    """Restrict ``ids`` to one cluster of an earlier run and/or drop excluded clusters."""
    keep = np.ones(len(ids), bool)
    if within is not None:
        run_id, cluster = within
        members = _members(ws, run_id, [cluster])
        if not members:
            raise ConfigError(f"Run {run_id} has no cluster {cluster}.")
        keep &= np.isin(ids, list(members))
    for run_id, clusters in exclude:
        keep &= ~np.isin(ids, list(_members(ws, run_id, clusters)))
    return keep


def _members(ws: Workspace, run_id: int, clusters: list[int]) -> set[int]:
    q = ",".join("?" * len(clusters))
    return {r[0] for r in ws.con.execute(
        f"SELECT image_id FROM assignments WHERE run_id=? AND cluster IN ({q})",
        (run_id, *clusters))}


def cluster_workspace(
    ws: Workspace,
    store: FeatureStore,
    *,
    reduce: str = "l2",
    method: str = "kmeans",
    k: int | str | None = None,
    k_range: tuple[int, int] = (2, 30),
    options: dict[str, Any] | None = None,
    seed: int = 0,
    within: tuple[int, int] | None = None,
    exclude: list[tuple[int, list[int]]] | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Reduce, cluster, validate and record one run; returns its summary.

    With ``reuse``, a finished run with the same parameters over the same images is
    returned (``"reused": True``) instead of clustering again: every step is seeded, so it
    would give the same result.
    """
    if method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    options = dict(options or {})
    exclude = exclude or []
    t0 = time.perf_counter()
    ids, X = store.read()
    keep = select_images(ws, ids, within, exclude)
    ids, X = ids[keep], np.asarray(X[keep], dtype=np.float32)
    if len(ids) < 3:
        raise ConfigError(f"Only {len(ids)} images to cluster; need at least 3.")
    params = {"features": store.key, "reduce": reduce, "method": method, "k": k,
              "k_range": list(k_range), "options": options, "seed": seed,
              "within": list(within) if within else None,
              "exclude": [[r, c] for r, c in exclude], "n_images": int(len(ids)),
              "images_sha1": hashlib.sha1(ids.astype("<i8").tobytes()).hexdigest()}
    if reuse:
        for old in reversed(ws.runs("cluster")):
            if old["status"] == "done" and old["params"] == params:
                return {**old["results"], "reused": True}
    run_id = ws.start_run("cluster", params)
    timings: dict[str, float] = {}
    caught = warnings.catch_warnings(record=True)
    noted = caught.__enter__()  # library warnings go into the run record, not the terminal
    warnings.simplefilter("always")
    try:
        t = time.perf_counter()
        reducer = make_reducer(reduce, random_state=seed)
        Z = reducer.fit_transform(X) if reducer is not None else X
        Z = np.ascontiguousarray(Z, dtype=np.float32)
        timings["reduce"] = time.perf_counter() - t

        sweep = None
        if k == "auto" or (k is None and method in K_METHODS and "distance_threshold"
                           not in options):
            t = time.perf_counter()
            lo, hi = k_range
            sweep = sweep_k(Z, range(lo, min(hi, len(ids) - 1) + 1),
                            method="gmm" if method == "gmm" else "kmeans", random_state=seed)
            k = int(sweep["chosen_k"])
            timings["choose_k"] = time.perf_counter() - t
        t = time.perf_counter()
        est = build_method(method, int(k) if k is not None else None, options, seed)
        labels = np.asarray(est.fit(Z).labels_, dtype=np.int64)
        timings["cluster"] = time.perf_counter() - t

        t = time.perf_counter()
        internal, sil = internal_validation(Z, labels, seed)
        if hasattr(est, "cophenetic_correlation_"):
            internal["cophenetic_correlation"] = est.cophenetic_correlation_
        for attr in ("inertia_", "bic_", "eps_"):
            if hasattr(est, attr):
                internal[attr.rstrip("_")] = float(getattr(est, attr))
        timings["validate"] = time.perf_counter() - t
    except BaseException:
        caught.__exit__(None, None, None)
        ws.finish_run(run_id, {"timings": timings}, status="failed")
        raise
    caught.__exit__(None, None, None)

    dist = centre_distances(Z, labels)
    with ws.transaction("recording cluster assignments") as con:
        con.executemany(
            "INSERT INTO assignments(run_id, image_id, cluster, silhouette) VALUES (?,?,?,?)",
            [(run_id, int(i), int(c), None if np.isnan(s) else float(s))
             for i, c, s in zip(ids, labels, sil, strict=True)])
        con.executemany(
            "INSERT INTO centre_distance(run_id, image_id, distance) VALUES (?,?,?)",
            [(run_id, int(i), float(d)) for i, d in zip(ids, dist, strict=True)
             if not np.isnan(d)])
    sizes = {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True),
                                            strict=True)}
    timings["total"] = time.perf_counter() - t0
    results = {
        "run_id": run_id, "n_images": int(len(ids)), "method": method, "reduce": reduce,
        "n_clusters": int(len([c for c in sizes if c != -1])), "k": k,
        "k_selection": sweep, "sizes": sizes, "internal": internal,
        "reduced_dim": int(Z.shape[1]), "estimator": _params(est),
        "timings": {key: round(v, 3) for key, v in timings.items()},
        "warnings": sorted({str(w.message).splitlines()[0] for w in noted}),
    }
    ws.finish_run(run_id, results)
    return results


def centre_distances(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each image's squared distance to its cluster's mean in the clustering space (NaN for
    noise). Recorded with a run, so the report can order members without rebuilding ``Z``."""
    d = np.full(len(labels), np.nan)
    for c in np.unique(labels):
        if c < 0:
            continue
        rows = np.flatnonzero(labels == c)
        d[rows] = ((Z[rows] - Z[rows].mean(0)) ** 2).sum(1)
    return d


def internal_validation(Z: np.ndarray, labels: np.ndarray, seed: int
                        ) -> tuple[dict[str, Any], np.ndarray]:
    """Silhouette (global, per cluster, per image), Hopkins and noise share.

    Noise (-1) is left out of the silhouette, as it belongs to no cluster. Per-image
    silhouettes are exact up to ``SILHOUETTE_ALL_BELOW`` images, sampled (seeded) above.
    """
    from sklearn.metrics import silhouette_samples

    n = len(labels)
    sil = np.full(n, np.nan)
    clustered = np.flatnonzero(labels != -1)
    out: dict[str, Any] = {"noise_share": float(np.mean(labels == -1))}
    if len(np.unique(labels[clustered])) >= 2:
        idx = clustered
        if len(idx) > SILHOUETTE_ALL_BELOW:
            idx = np.sort(np.random.default_rng(seed).choice(idx, SILHOUETTE_ALL_BELOW, False))
        sil[idx] = silhouette_samples(Z[idx], labels[idx])
        out["silhouette"] = float(np.nanmean(sil[idx]))
        out["silhouette_per_cluster"] = {
            int(c): float(np.nanmean(sil[idx][labels[idx] == c])) for c in np.unique(labels[idx])}
        out["silhouette_images"] = int(len(idx))
    else:
        out["silhouette"] = None
    m = min(1000, max(1, n // 10))
    # In hundreds of dimensions the d-th powers in Hopkins' formula saturate (H -> 1 for
    # nearly any data), so it is computed on a 10-d PCA projection of the clustering space.
    H = Z
    if Z.shape[1] > HOPKINS_DIM:
        from sklearn.decomposition import PCA

        H = PCA(HOPKINS_DIM, random_state=seed).fit_transform(Z)
    out["hopkins"] = hopkins(H, m, random_state=seed)
    out["hopkins_sample"] = m
    out["hopkins_space"] = f"pca{HOPKINS_DIM}" if H is not Z else "as clustered"
    return out, sil


def _params(est: BaseEstimator) -> dict[str, Any]:
    return {"class": type(est).__name__,
            **{k: v for k, v in est.get_params().items() if isinstance(v, int | float | str |
                                                                       type(None))}}
