"""Corrections to a clustering, each a derived run that can be undone: move images, merge
clusters, split one, set images aside, fewer or more groups (the merge tree)."""

from imgatlas.edit._derive import UNDONE, current_run, derive_run, undo
from imgatlas.edit._edits import NEW, SET_ASIDE, merge, move, regroup, set_aside, split
from imgatlas.edit._tree import cut, merge_tree

__all__ = ["NEW", "SET_ASIDE", "UNDONE", "current_run", "cut", "derive_run", "merge",
           "merge_tree", "move", "regroup", "set_aside", "split", "undo"]
