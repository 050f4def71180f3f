"""The workspace: one directory holding the catalog (SQLite) and the feature stores.

Data flows one way through it: ``scan`` writes images, ``embed`` writes features, later
stages read both and add their own runs. All SQL lives in this package.
"""

from imgatlas.store._images import KnownFile, ScannedFile
from imgatlas.store._io import io_errors
from imgatlas.store._runs import RunRecord, fingerprint, plain_params
from imgatlas.store.catalog import SCHEMA_VERSION, ImageRow, Status
from imgatlas.store.features import FeatureStore
from imgatlas.store.workspace import Workspace

__all__ = ["SCHEMA_VERSION", "FeatureStore", "ImageRow", "KnownFile", "RunRecord",
           "ScannedFile", "Status", "Workspace", "fingerprint", "io_errors", "plain_params"]
