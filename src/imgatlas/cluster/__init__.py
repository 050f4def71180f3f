"""Clustering estimators (scikit-learn style) and the k sweep."""

from imgatlas.cluster._methods import (
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
    knee_eps,
)
from imgatlas.cluster._scan import SCANClusterer
from imgatlas.cluster._select import sweep_k

__all__ = [
    "Agglomerative",
    "DBSCANClusterer",
    "GMMClusterer",
    "HDBSCANClusterer",
    "KMeansClusterer",
    "KMedoidsClusterer",
    "SCANClusterer",
    "knee_eps",
    "sweep_k",
]
