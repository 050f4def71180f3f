"""imgatlas: scan -> embed -> reduce -> cluster -> evaluate -> report -> search."""

from __future__ import annotations

__version__ = "0.1.0"

from imgatlas.api import embed, export_features, scan, status  # noqa: E402
from imgatlas.backbones import create_backbone, list_backbones  # noqa: E402
from imgatlas.store import Workspace  # noqa: E402

__all__ = [
    "__version__",
    "Workspace",
    "create_backbone",
    "embed",
    "export_features",
    "list_backbones",
    "scan",
    "status",
]
