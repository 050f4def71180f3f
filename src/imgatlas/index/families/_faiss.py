"""Families that are one faiss ``index_factory`` string each, with optional ``+smooth``
(kNN diffusion of the collection, float query expansion) and, for PQ, ``+rerank``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from imgatlas.index._faiss_util import (
    code_size,
    pq_bits,
    pq_m,
    read_index,
    set_search_params,
    train_index,
    training_sample,
)
from imgatlas.index.families._base import CodeFamily, register_family


class FaissFamily(CodeFamily):
    modifiers = frozenset({"smooth"})
    why_not = {"learn": "+learn and +dsh train a binary layer: itq only",
               "dsh": "+learn and +dsh train a binary layer: itq only"}
    mmap: ClassVar[bool] = True  # memory-map the index file when opening it

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        """``(faiss index_factory string, metric)`` for ``n`` vectors of ``d`` dimensions."""
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> FaissFamily:
        import faiss

        if self.spec.smooth:
            from imgatlas.reduce import KNNSmoother

            self.smoother = KNNSmoother(self.smooth_neighbors, 2)
            X = np.ascontiguousarray(self.smoother.fit_transform(X), dtype=np.float32)
        n, d = X.shape
        factory, metric = self.factory_string(d, n)
        index = faiss.index_factory(d, factory, metric)
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index) is not None
            train_index(index, training_sample(X, self.random_state) if ivf else X,
                        self.random_state)
        index.add(X)
        set_search_params(index)
        self.index, self.factory, self.n, self.dim = index, factory, n, d
        return self

    def transform_queries(self, Q: np.ndarray) -> np.ndarray:
        if self.spec.smooth:
            return np.ascontiguousarray(self.smoother.transform(Q), dtype=np.float32)
        return Q

    def code_bytes(self) -> float:
        return code_size(self.index)

    def bytes_per_image(self) -> dict[str, float]:
        import faiss

        total = faiss.serialize_index(self.index).nbytes / self.n
        # +smooth keeps the normalised and the smoothed float vectors for query expansion
        expansion = 2 * 4.0 * self.dim if self.spec.smooth else 0.0
        return {"code_bytes": self.code_bytes(), "index_bytes": round(total + expansion, 1),
                "query_expansion_bytes": expansion}

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(folder / "index.faiss"))
        if self.spec.smooth:
            sm = self.smoother
            base = faiss.rev_swig_ptr(sm.index_.get_xb(), sm.index_.ntotal * self.dim)
            np.save(folder / "smooth_base.npy", base.reshape(-1, self.dim).copy())
            np.save(folder / "smooth_embedding.npy", sm.embedding_)

    def load(self, folder: Path) -> None:
        self.index = read_index(folder / "index.faiss", mmap=self.mmap)
        if self.spec.smooth:
            import faiss

            from imgatlas.reduce import KNNSmoother

            base = np.load(folder / "smooth_base.npy")
            sm = KNNSmoother(self.smooth_neighbors, 2)
            sm.index_ = faiss.IndexFlatIP(base.shape[1])
            sm.index_.add(base)
            sm.embedding_ = np.load(folder / "smooth_embedding.npy")
            sm.n_features_in_ = base.shape[1]
            self.smoother = sm
        set_search_params(self.index)


def _metrics() -> tuple[Any, Any]:
    import faiss

    return faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2


@register_family
class FloatCodes(FaissFamily):
    name = "float"
    help = "the full float vectors, exact cosine"

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        return "Flat", _metrics()[0]


@register_family
class PCACodes(FaissFamily):
    name = "pca"
    help = "D principal components (floats), cosine"
    default_size, size_meaning = 64, "D"

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        self.check_fits(n, d)
        return f"PCA{self.spec.size},L2norm,Flat", _metrics()[0]


class _PQFamily(FaissFamily):
    modifiers = frozenset({"smooth", "rerank"})
    default_size, size_meaning = 64, "BYTES"

    def refine(self) -> str:
        # +rerank: faiss re-scores the PQ shortlist (k * REFINE_FACTOR) on the full vectors
        return ",RFlat" if self.spec.rerank else ""

    def pq(self, d: int, n: int) -> str:
        return f"PQ{pq_m(self.spec.size, d)}x{pq_bits(n)}{self.refine()}"


@register_family
class PQCodes(_PQFamily):
    name = "pq"
    help = "product quantisation, BYTES sub-quantisers (fewer bits each on small collections)"

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        return self.pq(d, n), _metrics()[1]


@register_family
class IVFPQCodes(_PQFamily):
    name = "ivfpq"
    help = "inverted lists over PQ residuals: the compact code for large collections"
    # faiss scans memory-mapped inverted lists ~4x slower than loaded ones (0.77 vs 0.18 ms a
    # query at 200k here); IVF-PQ files are small (code + 8-byte id per image): read whole
    mmap = False

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        return f"IVF{nlist},{self.pq(d, n)}", _metrics()[1]


@register_family
class HNSWPQCodes(_PQFamily):
    name = "hnswpq"
    help = "an HNSW graph over PQ codes: compact and sub-millisecond"

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        return f"HNSW32_{self.pq(d, n)}", _metrics()[1]


@register_family
class SignCodes(FaissFamily):
    name = "sign"
    help = "sign of the centred PCA projection, Hamming distance"
    default_size, size_meaning, bits = 512, "BITS", True

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        self.check_fits(n, d)
        return f"PCA{self.spec.size},LSH", _metrics()[1]


@register_family
class ITQCodes(FaissFamily):
    name = "itq"
    help = "iterative quantisation (PCA + rotation), Hamming distance"
    default_size, size_meaning, bits = 512, "BITS", True
    modifiers = frozenset({"smooth", "learn", "dsh"})

    @classmethod
    def for_spec(cls, spec: Any, **kw: Any) -> CodeFamily:
        if spec.learned:
            from imgatlas.index.families._learned import LearnedITQCodes

            return LearnedITQCodes(spec, **kw)
        return cls(spec, **kw)

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        self.check_fits(n, d)
        return f"ITQ{self.spec.size},LSHt", _metrics()[1]


@register_family
class HNSWCodes(FaissFamily):
    name = "hnsw"
    help = "an HNSW graph (M links per node) over the float vectors"
    default_size, size_meaning = 32, "M"

    def factory_string(self, d: int, n: int) -> tuple[str, int]:
        return f"HNSW{self.spec.size},Flat", _metrics()[0]

    def code_bytes(self) -> float:
        return 4.0 * self.dim
