"""The cluster stage: features from the workspace -> a recorded clustering run."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.cluster._registry import CLUSTERERS, build_method, takes_k
from imgatlas.cluster._select import choose_k
from imgatlas.errors import ConfigError
from imgatlas.evaluate.internal import centre_distances, internal_validation
from imgatlas.reduce import make_reducer
from imgatlas.store import FeatureStore, Workspace, fingerprint, plain_params

Selection = tuple[int, list[int]]  # (run id, clusters of that run)


def select_images(ws: Workspace, ids: np.ndarray, within: Selection | None,
                  exclude: list[Selection], exclude_flags: list[str] | None = None
                  ) -> np.ndarray:
    """Mask of ``ids`` inside the clusters ``within`` names (all of them), outside every
    excluded cluster, and not among what the latest inspection puts under
    ``exclude_flags`` (``duplicates``, ``blurry`` ...)."""
    keep = np.ones(len(ids), bool)
    if exclude_flags:
        from imgatlas.inspect import excluded_ids

        keep &= ~np.isin(ids, list(excluded_ids(ws, exclude_flags)))
    if within is not None:
        run_id, clusters = within
        ws.get_run(run_id, "cluster")
        members = ws.cluster_members(run_id, clusters)
        sizes = ws.cluster_sizes(run_id)
        missing = [c for c in clusters if c not in sizes]
        if missing:
            raise ConfigError(f"Run {run_id} has no cluster {missing[0]}.")
        keep &= np.isin(ids, list(members))
    for run_id, clusters in exclude:
        ws.get_run(run_id, "cluster")
        keep &= ~np.isin(ids, list(ws.cluster_members(run_id, clusters)))
    return keep


def latest_correction(ws: Workspace, run: dict[str, Any]) -> dict[str, Any]:
    """The latest finished run derived (through corrections) from ``run``, or ``run``."""
    family = {run["id"]}
    latest = run
    for r in ws.runs("cluster"):
        parent = r["params"].get("derived_from")
        if parent in family:
            family.add(r["id"])
            if r["status"] == "done":
                latest = r
    return latest


def cluster_workspace(
    ws: Workspace,
    store: FeatureStore,
    *,
    reduce: str = defaults.REDUCE,
    method: str = defaults.METHOD,
    k: int | str | None = defaults.K,
    k_range: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
    seed: int = defaults.SEED,
    within: Selection | None = None,
    exclude: list[Selection] | None = None,
    exclude_flags: list[str] | None = None,
    reuse: bool = False,
    grow: bool = False,
) -> dict[str, Any]:
    """Reduce, cluster, validate and record one run; returns its summary.

    With ``reuse``, a finished run with the same parameters over the same images is
    returned (``"reused": True``) instead of clustering again: every step is seeded, so it
    would give the same result. With ``grow`` too, a collection that changed by at most
    ``defaults.REFIT_GROWTH`` of its images since such a run keeps that run's clusters: the
    new images join their nearest neighbours' (a derived run, ``edit.op == "grow"``).
    """
    entry = CLUSTERERS[method]
    options = entry.options(dict(options or {}))
    exclude = exclude or []
    if not takes_k(method, options):
        k = None
    elif k is None:
        k = defaults.K
    t0 = time.perf_counter()
    ids, X = store.read()
    keep = select_images(ws, ids, within, exclude, exclude_flags)
    ids, X = ids[keep], np.asarray(X[keep], dtype=np.float32)
    if len(ids) < 3:
        raise ConfigError(f"Only {len(ids)} images to cluster; need at least 3.")
    params = {"features": store.key, "reduce": reduce, "method": method, "k": k,
              "k_range": list(k_range) if k_range else None, "options": options,
              "within": [within[0], list(within[1])] if within else None,
              "exclude": [[r, list(c)] for r, c in exclude], "n_images": int(len(ids))}
    if exclude_flags:  # only when given: runs recorded before keep their parameters
        params["exclude_flags"] = list(exclude_flags)
    inputs = fingerprint(ids, store.key)
    if reuse:
        old = ws.find_done_run("cluster", {**params, "seed": seed, "inputs": inputs})
        if old is not None:  # with the corrections a person made to it since, if any
            return {**latest_correction(ws, old)["results"], "reused": True}
        if grow and within is None and not exclude and not exclude_flags:
            from imgatlas.cluster._grow import grown_run

            grown = grown_run(ws, store, params, seed, ids)
            if grown is not None:
                return grown
    with ws.recording("cluster", params, seed=seed, inputs=inputs) as run:
        timings: dict[str, float] = {}
        # library warnings go into the run record, not the terminal
        with warnings.catch_warnings(record=True) as noted:
            warnings.simplefilter("always")
            t = time.perf_counter()
            reducer = make_reducer(reduce, random_state=seed)
            Z = reducer.fit_transform(X) if reducer is not None else X
            Z = np.ascontiguousarray(Z, dtype=np.float32)
            run.estimator("reduce", reducer)
            timings["reduce"] = time.perf_counter() - t

            sweep = None
            if k == "auto":
                t = time.perf_counter()
                sweep = choose_k(Z, method, k_range, seed)
                k = int(sweep["chosen_k"])
                timings["choose_k"] = time.perf_counter() - t
            t = time.perf_counter()
            est = build_method(method, int(k) if k is not None else None, options, seed)
            labels = np.asarray(est.fit(Z).labels_, dtype=np.int64)
            run.estimator("cluster", est)
            timings["cluster"] = time.perf_counter() - t

            t = time.perf_counter()
            internal, sil = internal_validation(Z, labels, seed)
            if hasattr(est, "cophenetic_correlation_"):
                internal["cophenetic_correlation"] = est.cophenetic_correlation_
            for attr in ("inertia_", "bic_", "eps_"):
                if hasattr(est, attr):
                    internal[attr.rstrip("_")] = float(getattr(est, attr))
            timings["validate"] = time.perf_counter() - t

        ws.record_assignments(run.id, ids, labels, sil, centre_distances(Z, labels))
        ws.save_space(run.id, ids, Z)
        from imgatlas.edit import merge_tree

        tree = merge_tree(Z, labels)
        sizes = {int(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True),
                                                strict=True)}
        timings["total"] = time.perf_counter() - t0
        run.results = {
            "run_id": run.id, "n_images": int(len(ids)), "method": method, "reduce": reduce,
            "n_clusters": int(len([c for c in sizes if c != -1])), "k": k,
            "k_selection": sweep, "sizes": sizes, "internal": internal,
            "reduced_dim": int(Z.shape[1]), "estimator": plain_params(est), "tree": tree,
            "timings": {key: round(v, 3) for key, v in timings.items()},
            "warnings": sorted({str(w.message).splitlines()[0] for w in noted}),
        }
    return run.results
