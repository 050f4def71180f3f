"""Images -> feature vectors, decode overlapped with ONNX Runtime inference."""

from imgatlas.embed._embedder import Embedder
from imgatlas.embed._workspace import embed_workspace, store_key

__all__ = ["Embedder", "embed_workspace", "store_key"]
