"""Export: the organised collection written out as folders (one per cluster, near-duplicate
copies and flagged images apart) with a manifest; the source is never written to."""

from imgatlas.export._dataset import DATASET_COLUMNS, DATASET_MANIFEST, export_dataset
from imgatlas.export._names import safe_name
from imgatlas.export._plan import DUPLICATES_DIR, REVIEW_DIR, UNSORTED_DIR, Placement, plan_export
from imgatlas.export._splits import SPLIT_NAMES, assign_splits, parse_split
from imgatlas.export._stage import export_folders
from imgatlas.export._write import COLUMNS, MANIFEST, MODES

__all__ = ["COLUMNS", "DATASET_COLUMNS", "DATASET_MANIFEST", "DUPLICATES_DIR", "MANIFEST",
           "MODES", "REVIEW_DIR", "SPLIT_NAMES", "UNSORTED_DIR", "Placement", "assign_splits",
           "export_dataset", "export_folders", "parse_split", "plan_export", "safe_name"]
