"""Dimensionality reduction as scikit-learn transformers, and the registry of steps."""

from imgatlas.reduce._reducers import (
    KNNSmoother,
    L2Normalizer,
    PCAReducer,
    UMAPReducer,
    knn_graph,
)
from imgatlas.reduce._registry import REDUCERS, make_reducer, spec_help

__all__ = ["REDUCERS", "KNNSmoother", "L2Normalizer", "PCAReducer", "UMAPReducer",
           "knn_graph", "make_reducer", "spec_help"]
