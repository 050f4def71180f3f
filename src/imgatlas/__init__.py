"""imgatlas: scan -> embed -> reduce -> cluster -> evaluate -> report -> search."""

from __future__ import annotations

__version__ = "0.1.0"

from imgatlas.api import (  # noqa: E402
    build_index,
    cluster,
    embed,
    evaluate,
    evaluate_retrieval,
    export_clusters,
    export_features,
    load_features,
    name_cluster,
    runs,
    scan,
    search,
    status,
    train_autoencoder,
)
from imgatlas.backbones import create_backbone, list_backbones  # noqa: E402
from imgatlas.store import Workspace  # noqa: E402

__all__ = [
    "__version__",
    "Workspace",
    "build_index",
    "cluster",
    "create_backbone",
    "embed",
    "evaluate",
    "evaluate_retrieval",
    "export_clusters",
    "export_features",
    "list_backbones",
    "load_features",
    "name_cluster",
    "runs",
    "scan",
    "search",
    "status",
    "train_autoencoder",
]
