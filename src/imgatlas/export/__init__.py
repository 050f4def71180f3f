"""Export: the organised collection written out as folders (one per cluster, near-duplicate
copies and flagged images apart) with a manifest; the source is never written to."""

from imgatlas.export._names import safe_name
from imgatlas.export._plan import DUPLICATES_DIR, REVIEW_DIR, UNSORTED_DIR, Placement, plan_export
from imgatlas.export._stage import export_folders
from imgatlas.export._write import COLUMNS, MANIFEST, MODES

__all__ = ["COLUMNS", "DUPLICATES_DIR", "MANIFEST", "MODES", "REVIEW_DIR", "UNSORTED_DIR",
           "Placement", "export_folders", "plan_export", "safe_name"]
