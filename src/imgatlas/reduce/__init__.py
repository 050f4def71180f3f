"""Dimensionality reduction as scikit-learn transformers: L2, PCA, UMAP."""

from imgatlas.reduce._reducers import (
    KNNSmoother,
    L2Normalizer,
    PCAReducer,
    UMAPReducer,
    knn_graph,
    make_reducer,
)

__all__ = ["KNNSmoother", "L2Normalizer", "PCAReducer", "UMAPReducer", "knn_graph", "make_reducer"]
