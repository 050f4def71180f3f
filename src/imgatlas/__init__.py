"""imgatlas: scan -> embed -> reduce -> cluster -> evaluate -> report -> search."""

from __future__ import annotations

# first: picks faiss' OpenBLAS kernel before anything loads it (imgatlas/_blas.py)
from imgatlas import _blas  # noqa: F401
from imgatlas._version import __version__
from imgatlas.api import (
    algorithms,
    build_index,
    cluster,
    compare_models,
    embed,
    evaluate,
    evaluate_model,
    evaluate_retrieval,
    evaluate_sketch,
    export_clusters,
    export_features,
    label_propagate,
    load_features,
    name_cluster,
    predict,
    report,
    run,
    runs,
    scan,
    search,
    search_sketch,
    set_labels,
    status,
    suggest_labels,
    train,
    train_autoencoder,
    train_sketch,
)
from imgatlas.backbones import create_backbone, list_backbones
from imgatlas.store import Workspace

__all__ = [
    "__version__",
    "Workspace",
    "algorithms",
    "build_index",
    "cluster",
    "compare_models",
    "create_backbone",
    "embed",
    "evaluate",
    "evaluate_model",
    "evaluate_retrieval",
    "evaluate_sketch",
    "export_clusters",
    "export_features",
    "label_propagate",
    "list_backbones",
    "load_features",
    "name_cluster",
    "predict",
    "report",
    "run",
    "runs",
    "scan",
    "search",
    "search_sketch",
    "set_labels",
    "status",
    "suggest_labels",
    "train",
    "train_autoencoder",
    "train_sketch",
]
