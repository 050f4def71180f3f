"""Dimensionality reduction as scikit-learn transformers: L2, PCA, UMAP."""

from imgatlas.reduce._reducers import L2Normalizer, PCAReducer, UMAPReducer, make_reducer

__all__ = ["L2Normalizer", "PCAReducer", "UMAPReducer", "make_reducer"]
