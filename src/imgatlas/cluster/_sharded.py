"""Clustering at scale: the reduction and the clusterer fitted on a seeded sample, then every
vector reduced and assigned shard by shard (as Ray tasks on the Ray engine).

The float vectors are never all in memory: the sample (``sample_size`` rows) and one shard
per worker are. Assignments equal the single-process path on the same sample and seed:
``est.predict(reducer.transform(X))`` with both fitted on the sample, as
:func:`fit_on_sample` and :func:`assign` do in one process.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._shards import StoreFile, map_shards, split
from imgatlas._shards import sample_rows as _sample_rows
from imgatlas.cluster._registry import CLUSTERERS, build_method, takes_k
from imgatlas.cluster._select import choose_k
from imgatlas.errors import ConfigError
from imgatlas.evaluate.internal import internal_validation
from imgatlas.reduce import make_reducer
from imgatlas.store import FeatureStore, Workspace, fingerprint, plain_params

SAMPLE_SIZE = defaults.RAY_SAMPLE_SIZE
SHARD_SIZE = defaults.SHARD_SIZE


def sample_rows(n: int, sample_size: int, seed: int) -> np.ndarray:
    if sample_size < 3:
        raise ConfigError(f"sample_size must be an int >= 3. Got {sample_size} instead.")
    return _sample_rows(n, sample_size, seed)


def fit_on_sample(Xs: np.ndarray, *, reduce: str, method: str, k: int | str | None,
                  k_range: tuple[int, int] | None, options: dict[str, Any], seed: int
                  ) -> tuple[Any, Any, np.ndarray, dict[str, Any] | None]:
    """``(reducer, clusterer, centres, sweep)`` fitted on the sample ``Xs``; the centres are
    the sample clusters' means in the reduced space (for each image's distance to its own)."""
    reducer = make_reducer(reduce, random_state=seed)
    Zs = reducer.fit_transform(Xs) if reducer is not None else Xs
    Zs = np.ascontiguousarray(Zs, dtype=np.float32)
    sweep = None
    if k == "auto":
        sweep = choose_k(Zs, method, k_range, seed)
        k = int(sweep["chosen_k"])
    est = build_method(method, int(k) if k is not None else None, options, seed).fit(Zs)
    if not hasattr(est, "predict"):
        raise ConfigError(f"Method {method!r} cannot place new points, so it cannot cluster "
                          "in shards; use one that predicts (kmeans, gmm, ...).")
    labels = np.asarray(est.labels_)
    # k-means on many identical points can leave a centre no sample point is labelled with,
    # while predict still gives it to others: every centre gets a row (NaN distances)
    n_centres = max(int(labels.max()) + 1, int(getattr(est, "n_clusters", 0) or 0))
    centres = np.stack([Zs[labels == c].mean(0) if (labels == c).any()
                        else np.full(Zs.shape[1], np.nan)
                        for c in range(n_centres)])
    return reducer, est, centres, sweep


def place(reducer: Any, est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, labels)``: vectors reduced and assigned as every image of a sampled run is."""
    Z = np.ascontiguousarray(reducer.transform(X) if reducer is not None else X,
                             dtype=np.float32)
    return Z, np.asarray(est.predict(Z), dtype=np.int64)


def assign(shared: tuple[StoreFile, Any, Any, np.ndarray], ids: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """One shard's clusters and squared distances to their centres."""
    source, reducer, est, centres = shared
    Z, labels = place(reducer, est, source.rows(ids))
    dist = np.full(len(labels), np.nan)
    ok = labels >= 0
    dist[ok] = ((Z[ok] - centres[labels[ok]]) ** 2).sum(1)
    return labels, dist


def cluster_sharded(ws: Workspace, store: FeatureStore, *, reduce: str = defaults.REDUCE,
                    method: str = defaults.METHOD, k: int | str | None = defaults.K,
                    k_range: tuple[int, int] | None = None,
                    options: dict[str, Any] | None = None, seed: int = defaults.SEED,
                    sample_size: int = SAMPLE_SIZE, shard_size: int = SHARD_SIZE,
                    engine: str = "local", address: str | None = None,
                    num_workers: int | None = None) -> dict[str, Any]:
    """Fit on a sample, assign every image shard by shard, record the run."""
    options = CLUSTERERS[method].options(dict(options or {}))
    if not takes_k(method, options):
        k = None
    t0 = time.perf_counter()
    ids = store.usable_ids()
    if len(ids) < 3:
        raise ConfigError(f"Only {len(ids)} images to cluster; need at least 3.")
    source = StoreFile.of(store)
    params = {"features": store.key, "reduce": reduce, "method": method, "k": k,
              "k_range": list(k_range) if k_range else None, "options": options,
              "n_images": int(len(ids)), "engine": engine, "sample_size": sample_size,
              "shard_size": shard_size}
    with ws.recording("cluster", params, seed=seed, inputs=fingerprint(ids, store.key)) as run:
        timings: dict[str, float] = {}
        with warnings.catch_warnings(record=True) as noted:
            warnings.simplefilter("always")
            t = time.perf_counter()
            rows = sample_rows(len(ids), sample_size, seed)
            Xs = source.rows(ids[rows])
            reducer, est, centres, sweep = fit_on_sample(
                Xs, reduce=reduce, method=method, k=k, k_range=k_range, options=options,
                seed=seed)
            run.estimator("reduce", reducer)
            run.estimator("cluster", est)
            # scored on the sample, placed as every other image is
            Zt, sample_labels = place(reducer, est, Xs)
            internal, _ = internal_validation(Zt, sample_labels, seed)
            internal["computed_on"] = f"the fitting sample ({len(rows):,} images)"
            timings["fit_on_sample"] = time.perf_counter() - t
            del Xs, Zt
            t = time.perf_counter()
            labels = np.empty(len(ids), np.int64)
            dist = np.empty(len(ids))
            spans = split(len(ids), shard_size)
            for (a, b), (lab, d) in zip(spans, map_shards(
                    assign, [ids[a:b] for a, b in spans], (source, reducer, est, centres),
                    engine=engine, address=address, num_workers=num_workers), strict=True):
                labels[a:b], dist[a:b] = lab, d
            timings["assign"] = time.perf_counter() - t
        ws.record_assignments(run.id, ids, labels, np.full(len(ids), np.nan), dist)
        sizes = {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True),
                                                strict=True)}
        timings["total"] = time.perf_counter() - t0
        run.results = {
            "run_id": run.id, "n_images": int(len(ids)), "method": method, "reduce": reduce,
            "n_clusters": int(len([c for c in sizes if c != -1])),
            "k": int(getattr(est, "n_clusters", len(sizes))), "k_selection": sweep,
            "sizes": sizes, "internal": internal, "reduced_dim": int(centres.shape[1]),
            "estimator": plain_params(est), "engine": engine,
            "sample_size": int(len(rows)), "shards": len(spans),
            "timings": {key: round(v, 3) for key, v in timings.items()},
            "warnings": sorted({str(w.message).splitlines()[0] for w in noted}),
        }
    return run.results
