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
             "optionally followed by +smooth (kNN diffusion of the collection, float query "
             "expansion), or itq:BITS+learn (compact: smoothed codes, a learned query map and "
             "query expansion in Hamming space), e.g. itq:512+learn")


@dataclass(frozen=True)
class Spec:
    family: str
    size: int | None
    smooth: bool
    learn: bool = False

    def __str__(self) -> str:
        core = self.family if self.size is None else f"{self.family}:{self.size}"
        return core + ("+smooth" if self.smooth else "") + ("+learn" if self.learn else "")


def parse_spec(text: str) -> Spec:
    m = re.fullmatch(r"(float|pca|pq|ivfpq|hnswpq|sign|itq|hnsw)(?::(\d+))?(\+smooth|\+learn)?",
                     text.strip())
    if not m:
        raise ConfigError(f"Unknown code spec {text!r}; use {SPEC_HELP}.")
    family, size = m.group(1), m.group(2)
    smooth, learn = m.group(3) == "+smooth", m.group(3) == "+learn"
    if learn and family != "itq":
        raise ConfigError(f"+learn is defined for itq codes only. Got {text!r} instead.")
    if family != "float" and size is None:
        size = {"pca": 64, "pq": 64, "ivfpq": 64, "hnswpq": 64, "sign": 512, "itq": 512,
                "hnsw": 32}[family]
    if family in ("sign", "itq") and int(size) % 8:
        raise ConfigError(f"Binary codes need a multiple of 8 bits. Got {size} instead.")
    return Spec(family, int(size) if size is not None else None, smooth, learn)


class CodeIndex(BaseEstimator):
    """One faiss index over L2-normalised vectors, ranked by cosine (or Hamming for binary
    codes, which approximate it). ``fit(X)`` trains and adds; ``search(Q, k)`` ranks."""

    SHORTLIST = 64  # Hamming candidates re-ranked asymmetrically before query expansion
    # exhaustive Hamming search costs ~1 ms per 100k codes per search: a graph above this
    BINARY_GRAPH_FROM = 200_000
    QE_NEIGHBOURS = 10
    QE_ROUNDS = 1  # a second round (neighbours of the expanded query) moved mAP by +-0.002

    def __init__(self, spec: str = "float", smooth_neighbors: int = 10,
                 ridge_alpha: float = 1.0, random_state: int = 0) -> None:
        self.spec = spec
        self.smooth_neighbors = smooth_neighbors
        self.ridge_alpha = ridge_alpha
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
        if self.spec_.learn:
            return self._fit_learned(X)
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
        set_search_params(index)
        self.index_ = index
        self.factory_ = factory
        self.n_ = n
        self.dim_ = d
        return self

    def _fit_learned(self, X: np.ndarray) -> CodeIndex:
        """``itq:B+learn``: the compact code that learns from the collection's neighbours.

        1. The collection is smoothed over its kNN graph (as ``+smooth``) and its smoothed
           vectors are encoded with ITQ: B bits per image, searched by Hamming distance.
        2. A linear map (ridge regression, closed form) is fitted from each image's raw
           vector to the ITQ projection of its smoothed vector. A query, which has no
           neighbours of its own yet, is mapped by it: the map has learned what smoothing
           does to an image like it. This is the study's sigmoid-threshold layer
           (sign(Wx + b) = [sigmoid(Wx + b) > 0.5]) trained on neighbour structure, not labels.
        3. Query expansion in code space: the query's 10 nearest codes (Hamming shortlist of
           ``SHORTLIST``, re-ranked by the asymmetric score <Wx + b, code>) are added, as
           +-1 vectors, to its projection; a second round takes the 10 nearest to that sum.
           The sign of the final sum is the query code, searched by Hamming distance.
        Per image only the B/8-byte code is kept; the map (B x d floats) is fixed overhead.
        """
        import faiss
        from sklearn.linear_model import Ridge

        from imgatlas.reduce import KNNSmoother

        n, d = X.shape
        bits = self.spec_.size
        if bits > d:
            raise ConfigError(f"{self.spec_} exceeds the feature dimension {d}.")
        if bits >= n:
            raise ConfigError(f"{self.spec_} needs more images than {bits} to fit; have {n}.")
        S = np.ascontiguousarray(KNNSmoother(self.smooth_neighbors, 2).fit_transform(X))
        itq = faiss.index_factory(d, f"ITQ{bits},LSHt")  # keep: it owns what downcasts see
        itq.train(S)
        pre = faiss.downcast_index(itq)
        transform = faiss.downcast_VectorTransform(pre.chain.at(0))
        thresholds = faiss.vector_to_array(faiss.downcast_index(pre.index).thresholds)
        target = transform.apply(S) - thresholds
        ridge = Ridge(alpha=self.ridge_alpha).fit(X, target)
        self.query_weights_ = np.ascontiguousarray(ridge.coef_.T, dtype=np.float32)  # d x B
        self.query_bias_ = ridge.intercept_.astype(np.float32)
        if n >= self.BINARY_GRAPH_FROM:
            index = faiss.IndexBinaryHNSW(bits, 32)
            index.hnsw.efConstruction = 80
            kind = "BinaryHNSW32"
        else:
            index = faiss.IndexBinaryFlat(bits)
            kind = "BinaryFlat"
        index.add(_pack(target))
        set_search_params(index)
        self.index_ = index
        self.factory_ = f"ITQ{bits} of kNN-smoothed vectors, {kind}; ridge query map"
        self.n_ = n
        self.dim_ = d
        return self

    def _learned_query_codes(self, Q: np.ndarray) -> np.ndarray:
        # No numpy matmul on this path: a small BLAS call leaves OpenBLAS's threads spinning
        # and faiss's OpenMP threads then wait for the cores (single queries measured 8 ms
        # at p50 that way, instead of under 1 ms). faiss applies the map; the rest is
        # elementwise.
        bits = self.spec_.size
        z = self._query_map().apply(np.ascontiguousarray(Q, dtype=np.float32))
        z *= np.sqrt(bits) / np.maximum(np.sqrt((z * z).sum(1, keepdims=True)), 1e-12)
        short = min(self.SHORTLIST, self.n_)
        codes = self._codes()
        cur = z
        for _ in range(self.QE_ROUNDS):
            _, cand = self.index_.search(_pack(cur), short)
            out = np.empty_like(z)
            for i, row in enumerate(cand):
                pm = _unpack_pm(codes[row[row >= 0]], bits)
                top = np.argsort(-(pm * cur[i]).sum(1), kind="stable")[: self.QE_NEIGHBOURS]
                out[i] = z[i] + pm[top].sum(0)
            cur = out
        return _pack(cur)

    def _query_map(self) -> Any:
        import faiss

        lt = getattr(self, "_query_map_lt", None)
        if lt is None:
            d, bits = self.query_weights_.shape
            lt = faiss.LinearTransform(d, bits, True)
            faiss.copy_array_to_vector(
                np.ascontiguousarray(self.query_weights_.T).ravel(), lt.A)  # row-major B x d
            faiss.copy_array_to_vector(self.query_bias_.astype(np.float32), lt.b)
            lt.is_trained = True
            self._query_map_lt = lt
        return lt

    def _codes(self) -> np.ndarray:
        """The collection's packed codes as an (n, B/8) uint8 view (no copy)."""
        import faiss

        cached = getattr(self, "_codes_view", None)
        if cached is None or len(cached) != self.n_:
            flat = self.index_
            if isinstance(flat, faiss.IndexBinaryHNSW):
                flat = faiss.downcast_IndexBinary(flat.storage)
            cached = faiss_codes(flat, self.spec_.size // 8)
            self._codes_view = cached
        return cached

    def transform_queries(self, Q: Any) -> np.ndarray:
        check_is_fitted(self)
        Q = np.ascontiguousarray(normalize(np.asarray(Q, dtype=np.float32)), dtype=np.float32)
        if self.spec_.learn:
            return self._learned_query_codes(Q)
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

        if self.spec_.learn:  # binary index: Hamming distances
            return False
        return self.index_.metric_type == faiss.METRIC_INNER_PRODUCT

    def bytes_per_image(self) -> dict[str, float]:
        """Code bytes (what one image costs in the codes) and the serialised index per image
        (codes + graph/transform overhead)."""
        import faiss

        check_is_fitted(self)
        if self.spec_.learn:
            code = self.spec_.size / 8
            fixed = 4.0 * (self.query_weights_.size + self.query_bias_.size)
            total = faiss.serialize_index_binary(self.index_).nbytes / self.n_
            return {"code_bytes": code, "index_bytes": round(total + fixed / self.n_, 1),
                    "query_expansion_bytes": 0.0, "fixed_bytes": fixed}
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


def set_search_params(index: Any) -> None:
    """Search-time settings that faiss does not save with an index: the breadth of a graph
    search (float or binary HNSW) and the number of IVF lists probed."""
    import faiss

    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = 128
    ivf = faiss.try_extract_index_ivf(index) if isinstance(index, faiss.Index) else None
    if ivf is not None:
        ivf.nprobe = 16


def faiss_codes(index: Any, code_size: int) -> np.ndarray:
    import faiss

    ptr = index.xb.data()
    return faiss.rev_swig_ptr(ptr, index.ntotal * code_size).reshape(-1, code_size)


def _pack(z: np.ndarray) -> np.ndarray:
    """Sign bits of ``z`` packed as faiss binary codes (bit j of byte i = dimension 8i + j)."""
    return np.packbits(np.asarray(z) > 0, axis=1, bitorder="little")


def _unpack_pm(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packed codes -> +-1 float vectors."""
    b = np.unpackbits(codes, axis=1, count=bits, bitorder="little").astype(np.float32)
    return 2.0 * b - 1.0


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
