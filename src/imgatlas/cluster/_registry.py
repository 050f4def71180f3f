"""Clustering methods by name: what each takes, whether it takes k, and its help."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from imgatlas.cluster._methods import (
    LINKAGES,
    METRICS,
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
)
from imgatlas.cluster._scan_head import SCANClusterer
from imgatlas.registry import Param, Registry

CLUSTERERS = Registry("clustering method")

_metric = Param("metric", str, "euclidean", "distance", METRICS)
_max_samples = Param("max_samples", int, 10_000,
                     "fit on a seeded sample of this many images above it (quadratic memory)",
                     low=2)


@CLUSTERERS.register(
    "kmeans", takes_k=True,
    help="k-means++ (scikit-learn; faiss above 200k points), best of n_init starts",
    params=(Param("n_init", int, 10, "restarts", low=1, high=1000),
            Param("max_iter", int, 300, "Lloyd iterations per start", low=1, high=100_000)))
def kmeans(k: int, seed: int, **options: Any) -> BaseEstimator:
    return KMeansClusterer(k, random_state=seed, **options)


@CLUSTERERS.register(
    "gmm", takes_k=True, help="Gaussian mixture (scikit-learn); BIC is recorded",
    params=(Param("covariance_type", str, "full", "GMM covariance",
                  ("full", "tied", "diag", "spherical"), cli="covariance"),
            Param("n_init", int, 1, "restarts", low=1, high=1000)))
def gmm(k: int, seed: int, **options: Any) -> BaseEstimator:
    return GMMClusterer(k, random_state=seed, **options)


@CLUSTERERS.register(
    "dbscan", help="DBSCAN: density-based, finds k itself, marks noise; eps from the "
                   "k-distance knee when not given",
    params=(Param("eps", float, None, "neighbourhood radius (default: k-distance knee)",
                  low=0, low_open=True),
            Param("min_samples", int, 10, "neighbours that make a core point", low=1),
            _metric))
def dbscan(k: int | None, seed: int, **options: Any) -> BaseEstimator:
    return DBSCANClusterer(**options)


@CLUSTERERS.register(
    "hdbscan", help="HDBSCAN (scikit-learn): density-based over all scales, marks noise",
    params=(Param("min_cluster_size", int, 15, "smallest cluster", low=2),
            Param("min_samples", int, None, "neighbours that make a core point", low=1)))
def hdbscan(k: int | None, seed: int, **options: Any) -> BaseEstimator:
    return HDBSCANClusterer(**options)


@CLUSTERERS.register(
    "kmedoids", takes_k=True, needs="kmedoids",
    help="k-medoids by FasterPAM on any metric (the GPL-3.0 'kmedoids' package, an extra)",
    params=(_metric, _max_samples))
def kmedoids(k: int, seed: int, **options: Any) -> BaseEstimator:
    return KMedoidsClusterer(k, random_state=seed, **options)


@CLUSTERERS.register(
    "agglomerative", takes_k=True,
    help="hierarchical clustering (scipy linkage), cut by k or by a distance",
    params=(Param("linkage", str, "ward", "linkage method", LINKAGES), _metric,
            Param("distance_threshold", float, None, "cut the tree at this height instead "
                                                     "of into k clusters", low=0,
                  low_open=True), _max_samples))
def agglomerative(k: int | None, seed: int, **options: Any) -> BaseEstimator:
    if options.get("distance_threshold") is not None:
        k = None
    return Agglomerative(k, random_state=seed, **options)


@CLUSTERERS.register(
    "scan", takes_k=True, needs="train",
    help="SCAN's cluster head trained on kNN pairs (PyTorch; assumes clusters of similar "
         "size)",
    params=(Param("n_neighbors", int, 20, "neighbours each image is paired with", low=1),
            Param("entropy_weight", float, 5.0, "weight of the equal-size prior", low=0),
            Param("epochs", int, 100, "passes over the data", low=1, high=100_000)))
def scan(k: int, seed: int, **options: Any) -> BaseEstimator:
    return SCANClusterer(k, random_state=seed, **options)


@CLUSTERERS.register(
    "turtle", takes_k=True, needs="train",
    help="TURTLE's margin-seeking head: the labelling a linear classifier would reproduce "
         "best (PyTorch), with a cluster-size prior from k-means (safe on imbalance)",
    params=(Param("gamma", float, 10.0, "weight of the cluster-size prior", low=0),
            Param("prior", str, "kmeans", "target cluster sizes", ("kmeans", "uniform")),
            Param("n_iter", int, 1500, "outer iterations", low=1, high=1_000_000),
            Param("learning_rate", float, 1e-3, "task encoder step size (Adam)", low=0,
                  low_open=True),
            Param("inner_lr", float, 1e-3, "inner learner step size (Adam)", low=0,
                  low_open=True)))
def turtle(k: int, seed: int, **options: Any) -> BaseEstimator:
    from imgatlas.cluster._turtle import TURTLEClusterer

    return TURTLEClusterer(k, random_state=seed, **options)


def build_method(method: str, k: int | None, options: dict[str, Any] | None = None,
                 seed: int = 0) -> BaseEstimator:
    """The estimator registered as ``method`` with ``k`` clusters and validated options."""
    entry = CLUSTERERS[method]
    opts = entry.options(dict(options or {}))
    return entry.factory(k if k is not None else 8 if entry.takes_k else None, seed, **opts)


def takes_k(method: str, options: dict[str, Any] | None = None) -> bool:
    """Whether ``method`` (with these options) needs a number of clusters."""
    entry = CLUSTERERS[method]
    return entry.takes_k and (options or {}).get("distance_threshold") is None
