"""Clustering estimators (scikit-learn style), their registry, and the k sweep."""

from imgatlas._lazy import lazy_exports
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

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["cluster_workspace"], "._stage"),
    **dict.fromkeys(["SAMPLE_SIZE", "SHARD_SIZE", "cluster_sharded"], "._sharded"),
    **dict.fromkeys(["cophenetic_table", "tree_and_cut"], "._hierarchy"),
    **dict.fromkeys(["evaluate_run", "score_run"], "._evaluate_stage"),
})

__all__ = [
    "CLUSTERERS",
    "SAMPLE_SIZE",
    "SHARD_SIZE",
    "Agglomerative",
    "DBSCANClusterer",
    "GMMClusterer",
    "HDBSCANClusterer",
    "KMeansClusterer",
    "KMedoidsClusterer",
    "SCANClusterer",
    "TURTLEClusterer",
    "build_method",
    "cluster_sharded",
    "cluster_workspace",
    "cophenetic_table",
    "evaluate_run",
    "knee_eps",
    "score_run",
    "sweep_k",
    "tree_and_cut",
]
