"""Clustering estimators (scikit-learn style), their registry, and the k sweep."""

from imgatlas.cluster._methods import (
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
    knee_eps,
)
from imgatlas.cluster._registry import CLUSTERERS, build_method
from imgatlas.cluster._scan_head import SCANClusterer
from imgatlas.cluster._select import sweep_k
from imgatlas.cluster._turtle import TURTLEClusterer

__all__ = [
    "CLUSTERERS",
    "Agglomerative",
    "DBSCANClusterer",
    "GMMClusterer",
    "HDBSCANClusterer",
    "KMeansClusterer",
    "KMedoidsClusterer",
    "SCANClusterer",
    "TURTLEClusterer",
    "build_method",
    "knee_eps",
    "sweep_k",
]
