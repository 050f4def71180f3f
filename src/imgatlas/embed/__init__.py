"""Images -> feature vectors, decode overlapped with ONNX Runtime inference."""

from imgatlas.embed._embedder import Embedder, MultiEmbedder
from imgatlas.embed._workspace import embed_workspace, store_key

__all__ = ["Embedder", "MultiEmbedder", "embed_workspace", "store_key"]
