"""Search indexes over the workspace's features: one class per code family (float, PCA,
PQ, IVF-PQ, HNSW, sign, ITQ, learned binary, UMAP), all built by faiss, picked by name."""

from imgatlas._lazy import lazy_exports
from imgatlas.index._codes import CodeIndex
from imgatlas.index._spec import CODES, Spec, parse_spec, spec_help

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["build_index", "index_arrays", "index_dir", "index_store", "load_index"],
                     "._stage"),
    **dict.fromkeys(["results", "search_files", "search_ids", "store_backbone"], "._search"),
    **dict.fromkeys(["SHARD_SIZE"], "._sharded"),
    **dict.fromkeys(["evaluate_retrieval", "retrieval_scores"], "._evaluate_stage"),
})

__all__ = [
    "CODES",
    "SHARD_SIZE",
    "CodeIndex",
    "Spec",
    "build_index",
    "evaluate_retrieval",
    "index_arrays",
    "index_dir",
    "index_store",
    "load_index",
    "parse_spec",
    "results",
    "retrieval_scores",
    "search_files",
    "search_ids",
    "spec_help",
    "store_backbone",
]
