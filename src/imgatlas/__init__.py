"""imgatlas: scan -> embed -> reduce -> cluster -> evaluate -> report -> search."""

from __future__ import annotations

__version__ = "0.1.0"

from imgatlas.api import (  # noqa: E402
    algorithms,
    build_index,
    cluster,
    compare_models,
    embed,
    evaluate,
    evaluate_model,
    evaluate_retrieval,
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
    set_labels,
    status,
    suggest_labels,
    train,
    train_autoencoder,
)
from imgatlas.backbones import create_backbone, list_backbones  # noqa: E402
from imgatlas.store import Workspace  # noqa: E402

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
    "set_labels",
    "status",
    "suggest_labels",
    "train",
    "train_autoencoder",
]
