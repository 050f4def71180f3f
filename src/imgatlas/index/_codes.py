from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize

from imgatlas._validation import check_is_fitted
from imgatlas.errors import ConfigError

SPEC_HELP = ("float | pca:D | pq:M | ivfpq:M | hnswpq:M | sign:BITS | itq:BITS | hnsw:M, each "
             "optionally "
             "followed by +smooth (kNN diffusion of the collection, query expansion for "
             "queries), e.g. itq:512+smooth")


@dataclass(frozen=True)
class Spec:
    family: str
    size: int | None
    smooth: bool

    def __str__(self) -> str:
        core = self.family if self.size is None else f"{self.family}:{self.size}"
        return core + ("+smooth" if self.smooth else "")


def parse_spec(text: str) -> Spec:
    m = re.fullmatch(r"(float|pca|pq|ivfpq|hnswpq|sign|itq|hnsw)(?::(\d+))?(\+smooth)?",
                     text.strip())
    if not m:
        raise ConfigError(f"Unknown code spec {text!r}; use {SPEC_HELP}.")
    family, size, smooth = m.group(1), m.group(2), bool(m.group(3))
    if family != "float" and size is None:
        size = {"pca": 64, "pq": 64, "ivfpq": 64, "hnswpq": 64, "sign": 512, "itq": 512,
                "hnsw": 32}[family]
    if family in ("sign", "itq") and int(size) % 8:
        raise ConfigError(f"Binary codes need a multiple of 8 bits. Got {size} instead.")
    return Spec(family, int(size) if size is not None else None, smooth)


class CodeIndex(BaseEstimator):
    """One faiss index over L2-normalised vectors, ranked by cosine (or Hamming for binary
    codes, which approximate it). ``fit(X)`` trains and adds; ``search(Q, k)`` ranks."""

    def __init__(self, spec: str = "float", smooth_neighbors: int = 10,
                 random_state: int = 0) -> None:
        self.spec = spec
        self.smooth_neighbors = smooth_neighbors
        self.random_state = random_state

    def _factory(self, d: int, n: int) -> tuple[str, int]:
        import faiss

        s = self.spec_
        ip, l2 = faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2
        if s.family == "float":
            return "Flat", ip
        if s.family in ("pca", "sign", "itq") and s.size > d:
            raise ConfigError(f"{s} exceeds the feature dimension {d}.")
        if s.family == "pca":
            return f"PCA{s.size},L2norm,Flat", ip
        if s.family in ("sign", "itq", "pca") and s.size >= n:
            raise ConfigError(f"{s} needs more images than {s.size} to fit; have {n}.")
        if s.family == "pq":
            return f"PQ{_pq_m(s.size, d)}x{_pq_bits(n)}", l2
        if s.family == "ivfpq":
            nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
            return f"IVF{nlist},PQ{_pq_m(s.size, d)}x{_pq_bits(n)}", l2
        if s.family == "hnswpq":  # graph over PQ codes: compact and sub-millisecond
            return f"HNSW32_PQ{_pq_m(s.size, d)}x{_pq_bits(n)}", l2
        if s.family == "sign":
            return f"PCA{s.size},LSH", l2
        if s.family == "itq":
            return f"ITQ{s.size},LSHt", l2
        if s.family == "hnsw":
            return f"HNSW{s.size},Flat", ip
        raise AssertionError(s)

    def fit(self, X: Any, y: Any = None) -> CodeIndex:
        import faiss

        self.spec_ = parse_spec(self.spec)
        X = np.ascontiguousarray(normalize(np.asarray(X, dtype=np.float32)), dtype=np.float32)
        if self.spec_.smooth:
            from imgatlas.reduce import KNNSmoother

            self.smoother_ = KNNSmoother(self.smooth_neighbors, 2)
            X = np.ascontiguousarray(self.smoother_.fit_transform(X), dtype=np.float32)
        n, d = X.shape
        factory, metric = self._factory(d, n)
        faiss.seed = self.random_state  # not read by all index types; kept for the record
        index = faiss.index_factory(d, factory, metric)
        if not index.is_trained:
            index.train(X)
        index.add(X)
        if self.spec_.family in ("hnsw", "hnswpq"):
            index.hnsw.efSearch = 128
        if self.spec_.family == "ivfpq":
            faiss.extract_index_ivf(index).nprobe = 16
        self.index_ = index
        self.factory_ = factory
        self.n_ = n
        self.dim_ = d
        return self

    def transform_queries(self, Q: Any) -> np.ndarray:
        check_is_fitted(self)
        Q = np.ascontiguousarray(normalize(np.asarray(Q, dtype=np.float32)), dtype=np.float32)
        if self.spec_.smooth:
            Q = np.ascontiguousarray(self.smoother_.transform(Q), dtype=np.float32)
        return Q

    def search(self, Q: Any, k: int = 10, *, prepared: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``: higher score = closer; rows index the fitted collection."""
        check_is_fitted(self)
        if not prepared:
            Q = self.transform_queries(Q)
        dist, rows = self.index_.search(Q, min(k, self.n_))
        scores = dist if self.metric_is_similarity else -dist
        return scores, rows

    @property
    def metric_is_similarity(self) -> bool:
        import faiss

        return self.index_.metric_type == faiss.METRIC_INNER_PRODUCT

    def bytes_per_image(self) -> dict[str, float]:
        """Code bytes (what one image costs in the codes) and the serialised index per image
        (codes + graph/transform overhead)."""
        import faiss

        check_is_fitted(self)
        try:
            code = float(self.index_.sa_code_size())
        except RuntimeError:  # HNSW over PQ has no standalone codec: its storage's codes
            code = float(self.index_.storage.sa_code_size())
        if self.spec_.family == "hnsw":
            code = 4.0 * self.dim_
        total = faiss.serialize_index(self.index_).nbytes / self.n_
        # +smooth keeps the normalised and the smoothed float vectors for query expansion
        expansion = 2 * 4.0 * self.dim_ if self.spec_.smooth else 0.0
        return {"code_bytes": code, "index_bytes": round(total + expansion, 1),
                "query_expansion_bytes": expansion}


def _pq_bits(n: int) -> int:
    """Bits per sub-quantiser: 8 (256 centroids) needs ~10k training vectors; fewer images
    get coarser sub-quantisers instead of faiss' under-trained warnings."""
    return int(max(1, min(8, math.floor(math.log2(max(n, 2) / 39)))))


def _pq_m(bytes_: int, d: int) -> int:
    """PQ with 8-bit sub-quantisers: ``bytes_`` sub-vectors, which must divide d."""
    m = bytes_
    while m > 1 and d % m:
        m -= 1
    return m
