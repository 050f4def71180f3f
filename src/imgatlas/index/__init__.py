"""Search indexes over the workspace's features: one class per code family (float, PCA,
PQ, IVF-PQ, HNSW, sign, ITQ, learned binary, UMAP), all built by faiss, picked by name."""

from imgatlas.index._codes import CodeIndex
from imgatlas.index._spec import CODES, Spec, parse_spec, spec_help

__all__ = ["CODES", "CodeIndex", "Spec", "parse_spec", "spec_help"]
