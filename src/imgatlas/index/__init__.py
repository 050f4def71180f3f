"""Search indexes over the workspace's features: float, PCA, PQ, IVF-PQ, binary codes
(sign of centred PCA, ITQ) and HNSW graphs, all built by faiss."""

from imgatlas.index._codes import CodeIndex, parse_spec

__all__ = ["CodeIndex", "parse_spec"]
