"""The workspace: one directory holding the catalog (SQLite) and the feature stores.

Data flows one way through it: ``scan`` writes images, ``embed`` writes features, later
stages read both and add their own runs.
"""

from imgatlas.store.catalog import SCHEMA_VERSION, ImageRow, Status
from imgatlas.store.features import FeatureStore
from imgatlas.store.workspace import Workspace

__all__ = ["SCHEMA_VERSION", "FeatureStore", "ImageRow", "Status", "Workspace"]
