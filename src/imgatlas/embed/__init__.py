"""Images -> feature vectors, decode overlapped with ONNX Runtime inference."""

from imgatlas._lazy import lazy_exports
from imgatlas.embed._embedder import Embedder, MultiEmbedder
from imgatlas.embed._workspace import embed_workspace, store_key

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["embed_workspace_ray"], "._ray"),
    **dict.fromkeys(["reopen_int8", "with_precision"], "._int8"),
})

__all__ = [
    "Embedder",
    "MultiEmbedder",
    "embed_workspace",
    "embed_workspace_ray",
    "reopen_int8",
    "store_key",
    "with_precision",
]
