"""Reduction steps by name, and the spec language that chains them (``l2,pca:128``).

A step is ``NAME[:ARG[:ARG]]``; its arguments are positional and declared in the registry
with their types and defaults, so the CLI's help, the parser and the docs say the same.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from imgatlas.errors import ConfigError
from imgatlas.reduce._reducers import KNNSmoother, L2Normalizer, PCAReducer, UMAPReducer
from imgatlas.registry import Param, Registry

REDUCERS = Registry("reduction step")


@REDUCERS.register("none", help="the features as they are")
def none(random_state: int | None) -> None:
    return None


@REDUCERS.register("l2", help="scale each vector to unit length (cosine geometry)")
def l2(random_state: int | None) -> BaseEstimator:
    return L2Normalizer()


@REDUCERS.register(
    "knn-smooth", help="average each vector with its nearest neighbours (cosine), ITER times",
    params=(Param("k", int, 10, "neighbours", low=1),
            Param("iter", int, 2, "rounds", low=0, high=100)))
def knn_smooth(random_state: int | None, k: int = 10, iter: int = 2) -> BaseEstimator:
    return KNNSmoother(k, iter)


def _components(value: Any) -> int | float:
    v = float(value)
    return int(v) if v >= 1 else v


_COMPONENTS = Param("n", _components, 0.95,
                    "components (an int), or the explained-variance fraction to keep (< 1)",
                    low=0, low_open=True)


@REDUCERS.register("pca", help="principal components", params=(_COMPONENTS,))
def pca(random_state: int | None, n: int | float = 0.95) -> BaseEstimator:
    return PCAReducer(n, random_state=random_state)


@REDUCERS.register(
    "pca-whiten", help="principal components, each divided by its variance to POWER "
                       "(0.5 = full whitening; smaller powers whiten partially)",
    params=(_COMPONENTS, Param("power", float, 0.5, "whitening power in [0, 1]", low=0,
                               high=1)))
def pca_whiten(random_state: int | None, n: int | float = 0.95, power: float = 0.5
               ) -> BaseEstimator:
    return PCAReducer(n, whiten=True, whiten_power=power, random_state=random_state)


@REDUCERS.register(
    "umap", help="UMAP embedding (umap-learn; its numba kernels compile on the first fit)",
    params=(Param("n", int, 10, "dimensions", low=1),
            Param("metric", str, "cosine", "distance",
                  ("euclidean", "cosine", "manhattan", "correlation", "chebyshev"))))
def umap(random_state: int | None, n: int = 10, metric: str = "cosine") -> BaseEstimator:
    return UMAPReducer(n_components=n, metric=metric, random_state=random_state)


def spec_help() -> str:
    """One line per step, from the registry: ``pca-whiten:N[:POWER]``."""
    parts = []
    for e in REDUCERS:
        args = "".join(f"[:{p.name.upper()}]" for p in e.params)
        parts.append(e.name + args)
    return " | ".join(parts) + "; steps chained with commas (l2,pca:128)"


def make_reducer(spec: str, random_state: int | None = 0) -> BaseEstimator | None:
    """Parse a reduction spec into an estimator (``None`` for ``none``); several steps
    joined by commas chain into a scikit-learn Pipeline."""
    steps = [p.strip() for p in spec.split(",") if p.strip()] or ["none"]
    ests = [e for e in (_one_step(p, random_state) for p in steps) if e is not None]
    if not ests:
        return None
    if len(ests) == 1:
        return ests[0]
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*ests)


def _one_step(spec: str, random_state: int | None) -> BaseEstimator | None:
    name, *args = spec.lower().split(":")
    if name not in REDUCERS:
        raise ConfigError(f"Unknown reduction {spec!r}; use {spec_help()}.")
    entry = REDUCERS[name]
    if len(args) > len(entry.params):
        raise ConfigError(f"Reduction {spec!r} takes at most {len(entry.params)} "
                          f"argument(s); use {spec_help()}.")
    values = [p.convert(a, f"reduction '{name}'") for p, a in zip(entry.params, args,
                                                                   strict=False)]
    return entry.factory(random_state, *values)
