from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize

from imgatlas._validation import check_is_fitted
from imgatlas.errors import ConfigError

SPEC_HELP = ("float | pca:D | umap:D[@N] | pq:M | ivfpq:M | hnswpq:M | sign:BITS | itq:BITS | "
             "hnsw:M, each optionally followed by +smooth (kNN diffusion of the collection, "
             "float query expansion); pq/ivfpq/hnswpq also by +rerank (re-rank a shortlist on "
             "the full vectors); itq:BITS+learn (compact: smoothed codes, a learned query map "
             "and query expansion in Hamming space); itq:BITS+dsh (that layer trained further "
             "with a DSH-style loss on neighbour pairs, both sides coded by it); umap:D@N fits "
             "UMAP on N sampled images and maps the rest; e.g. itq:512+dsh")
MODIFIERS = ("smooth", "learn", "rerank", "dsh")


@dataclass(frozen=True)
class Spec:
    family: str
    size: int | None
    smooth: bool
    learn: bool = False
    rerank: bool = False
    dsh: bool = False
    fit_size: int | None = None  # umap: fit on this many sampled images, map the rest

    def __str__(self) -> str:
        core = self.family if self.size is None else f"{self.family}:{self.size}"
        if self.fit_size is not None:
            core += f"@{self.fit_size}"
        return core + "".join(f"+{m}" for m in MODIFIERS if getattr(self, m))

    @property
    def learned(self) -> bool:
        """Binary codes from a learned layer (+learn, +dsh): Hamming search, a query map."""
        return self.learn or self.dsh


def parse_spec(text: str) -> Spec:
    m = re.fullmatch(r"(float|pca|umap|pq|ivfpq|hnswpq|sign|itq|hnsw)(?::(\d+))?(?:@(\d+))?"
                     r"(?:\+(smooth|learn|rerank|dsh))?", text.strip())
    if not m:
        raise ConfigError(f"Unknown code spec {text!r}; use {SPEC_HELP}.")
    family, size, fit_size, modifier = m.groups()
    if modifier in ("learn", "dsh") and family != "itq":
        raise ConfigError(f"+{modifier} is defined for itq codes only. Got {text!r} instead.")
    if modifier == "rerank" and family not in ("pq", "ivfpq", "hnswpq"):
        raise ConfigError(f"+rerank is defined for pq, ivfpq and hnswpq. Got {text!r} instead.")
    if fit_size is not None and family != "umap":
        raise ConfigError(f"@N (fit on a sample) is defined for umap codes only. Got {text!r} "
                          "instead.")
    if modifier == "smooth" and family == "umap":
        raise ConfigError("umap codes are already a neighbour-graph embedding; drop +smooth.")
    if family != "float" and size is None:
        size = {"pca": 64, "umap": 16, "pq": 64, "ivfpq": 64, "hnswpq": 64, "sign": 512,
                "itq": 512, "hnsw": 32}[family]
    if family in ("sign", "itq") and int(size) % 8:
        raise ConfigError(f"Binary codes need a multiple of 8 bits. Got {size} instead.")
    if fit_size is not None and int(fit_size) < 10:
        raise ConfigError(f"umap:D@N needs N >= 10 images to fit. Got {fit_size} instead.")
    return Spec(family, int(size) if size is not None else None, smooth=modifier == "smooth",
                learn=modifier == "learn", rerank=modifier == "rerank", dsh=modifier == "dsh",
                fit_size=int(fit_size) if fit_size is not None else None)


REFINE_FACTOR = 8  # +rerank: the PQ search returns k * this candidates for exact re-scoring


class CodeIndex(BaseEstimator):
    """One faiss index over L2-normalised vectors, ranked by cosine (or Hamming for binary
    codes, which approximate it). ``fit(X)`` trains and adds; ``search(Q, k)`` ranks."""

    SHORTLIST = 64  # Hamming candidates re-ranked asymmetrically before query expansion
    # exhaustive Hamming search costs ~1 ms per 100k codes per search: a graph above this
    BINARY_GRAPH_FROM = 200_000
    QE_NEIGHBOURS = 10
    QE_ROUNDS = 1  # a second round (neighbours of the expanded query) moved mAP by +-0.002
    DSH_EPOCHS = 10
    DSH_ALPHA = 1.0  # binarisation weight; 0.1 / 0.3 / 1.0 compared on the dev sets

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
        # +rerank: faiss re-scores the PQ shortlist (k * REFINE_FACTOR) on the full vectors
        refine = ",RFlat" if s.rerank else ""
        if s.family == "pq":
            return f"PQ{_pq_m(s.size, d)}x{_pq_bits(n)}{refine}", l2
        if s.family == "ivfpq":
            nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
            return f"IVF{nlist},PQ{_pq_m(s.size, d)}x{_pq_bits(n)}{refine}", l2
        if s.family == "hnswpq":  # graph over PQ codes: compact and sub-millisecond
            return f"HNSW32_PQ{_pq_m(s.size, d)}x{_pq_bits(n)}{refine}", l2
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
        if self.spec_.learned:
            return self._fit_learned(X)
        if self.spec_.family == "umap":
            return self._fit_umap(X)
        if self.spec_.smooth:
            from imgatlas.reduce import KNNSmoother

            self.smoother_ = KNNSmoother(self.smooth_neighbors, 2)
            X = np.ascontiguousarray(self.smoother_.fit_transform(X), dtype=np.float32)
        n, d = X.shape
        factory, metric = self._factory(d, n)
        faiss.seed = self.random_state  # not read by all index types; kept for the record
        index = faiss.index_factory(d, factory, metric)
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index) is not None
            index.train(_training_sample(X, self.random_state) if ivf else X)
        index.add(X)
        set_search_params(index)
        self.index_ = index
        self.factory_ = factory
        self.n_ = n
        self.dim_ = d
        return self

    def _fit_umap(self, X: np.ndarray) -> CodeIndex:
        """``umap:D[@N]``: D floats per image from a cosine UMAP of the features, searched by
        Euclidean distance in the embedding (the SBIR study's best codes for mAP).

        A query is placed by ``UMAP.transform``, which needs the fitted model: the images
        UMAP was fitted on (N x d floats) and its neighbour index. That model is the memory
        cost of these codes (``fixed_bytes``), so ``@N`` fits on N sampled images and maps
        the rest with ``transform``: a smaller model and a faster fit, for some quality.
        """
        import faiss

        from imgatlas.reduce import UMAPReducer

        n, d = X.shape
        dims = self.spec_.size
        if n <= dims:
            raise ConfigError(f"{self.spec_} needs more images than {dims} to fit; have {n}.")
        fit_rows = np.arange(n)
        if self.spec_.fit_size is not None and self.spec_.fit_size < n:
            rng = np.random.default_rng(self.random_state)
            fit_rows = np.sort(rng.choice(n, self.spec_.fit_size, replace=False))
        reducer = UMAPReducer(n_components=dims, n_neighbors=15, min_dist=0.0, metric="cosine",
                              random_state=self.random_state).fit(X[fit_rows])
        E = np.empty((n, dims), np.float32)
        E[fit_rows] = reducer.embedding_
        rest = np.setdiff1d(np.arange(n), fit_rows)
        if len(rest):
            E[rest] = reducer.transform(X[rest])
        index = faiss.IndexFlatL2(dims)
        index.add(np.ascontiguousarray(E))
        self.umap_ = reducer
        self.index_ = index
        self.factory_ = f"UMAP{dims} (cosine, fitted on {len(fit_rows)} images), Flat L2"
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

        ``itq:B+dsh`` goes one step further: starting from that map, the layer is trained
        with a DSH-style loss (neighbours in the smoothed collection close, random images a
        margin apart, a binarisation term; see ``_dsh``), and the collection is coded by the
        trained layer too, so both sides of a comparison pass through the same layer.
        """
        import faiss
        from sklearn.linear_model import Ridge

        from imgatlas.reduce import KNNSmoother, knn_graph

        n, d = X.shape
        bits = self.spec_.size
        if bits > d:
            raise ConfigError(f"{self.spec_} exceeds the feature dimension {d}.")
        if bits >= n:
            raise ConfigError(f"{self.spec_} needs more images than {bits} to fit; have {n}.")
        smoother = KNNSmoother(self.smooth_neighbors, 2)
        S = np.ascontiguousarray(smoother.fit_transform(X))
        target = itq_projection(S, bits, self.random_state)
        ridge = Ridge(alpha=self.ridge_alpha).fit(X, target)
        self.query_weights_ = np.ascontiguousarray(ridge.coef_.T, dtype=np.float32)  # d x B
        self.query_bias_ = ridge.intercept_.astype(np.float32)
        method = f"ITQ{bits} of kNN-smoothed vectors"
        if self.spec_.dsh:
            from imgatlas.index._dsh import train_dsh

            neighbours = knn_graph(S, self.smooth_neighbors, smoother.exact_below)
            self.query_weights_, self.query_bias_ = train_dsh(
                X, self.query_weights_, self.query_bias_, neighbours,
                epochs=self.DSH_EPOCHS, alpha=self.DSH_ALPHA, random_state=self.random_state)
            target = X @ self.query_weights_ + self.query_bias_
            method = f"DSH-trained layer (from {method})"
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
        queries = "same layer for queries" if self.spec_.dsh else "ridge query map"
        self.factory_ = f"{method}, {kind}; {queries}"
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
        if self.spec_.learned:
            return self._learned_query_codes(Q)
        if self.spec_.family == "umap":
            return np.ascontiguousarray(self.umap_.transform(Q), dtype=np.float32)
        if self.spec_.smooth:
            Q = np.ascontiguousarray(self.smoother_.transform(Q), dtype=np.float32)
        return Q

    def member_queries(self, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Prepared queries for members of the collection (``rows``, their vectors ``X``).

        Every code but UMAP's recomputes a member's own code from its vector; a UMAP
        embedding is not reproduced by ``transform``, so a member queries with its stored
        position (the study's leave-one-out protocol; also search by image id).
        """
        check_is_fitted(self)
        if self.spec_.family == "umap":
            return self.index_.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        return self.transform_queries(X)

    def search(self, Q: Any, k: int = 10, *, prepared: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``: higher score = closer; rows index the fitted collection."""
        check_is_fitted(self)
        if not prepared:
            Q = self.transform_queries(Q)
        dist, rows = self.index_.search(Q, min(k, self.n_))
        scores = dist if self.metric_is_similarity else -dist
        return scores, rows

    def set_search(self, ef_search: int | None = None, nprobe: int | None = None
                   ) -> CodeIndex:
        """Trade speed for recall at query time: ``ef_search``, the breadth of a graph search
        (``hnsw``, ``hnswpq`` and learned codes above the flat-search size; default
        128), and ``nprobe``, the IVF lists scanned (``ivfpq``; default 16). A knob the
        index does not have is a ConfigError rather than silently ignored."""
        check_is_fitted(self)
        for name, value in (("ef_search", ef_search), ("nprobe", nprobe)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1. Got {value} instead.")
        graph, ivf = set_search_params(self.index_, ef_search, nprobe)
        if ef_search is not None and not graph:
            raise ConfigError(f"ef_search applies to graph indexes (hnsw, hnswpq); the "
                              f"{self.spec_} index here is {self.factory_}.")
        if nprobe is not None and not ivf:
            raise ConfigError(f"nprobe applies to ivfpq indexes; the {self.spec_} index here "
                              f"is {self.factory_}.")
        return self

    @property
    def metric_is_similarity(self) -> bool:
        import faiss

        if self.spec_.learned:  # binary index: Hamming distances
            return False
        return self.index_.metric_type == faiss.METRIC_INNER_PRODUCT

    def bytes_per_image(self) -> dict[str, float]:
        """Code bytes (what one image costs in the codes) and the serialised index per image
        (codes + graph/transform overhead). Learned and UMAP codes also report
        ``fixed_bytes``, what they keep once for the whole collection (the query layer,
        the UMAP model), spread over the images in ``index_bytes``."""
        import faiss

        check_is_fitted(self)
        if self.spec_.learned:
            code = self.spec_.size / 8
            fixed = 4.0 * (self.query_weights_.size + self.query_bias_.size)
            total = faiss.serialize_index_binary(self.index_).nbytes / self.n_
        elif self.spec_.family == "umap":
            code = 4.0 * self.spec_.size
            fixed = float(len(_pickle(self.umap_)))
            total = faiss.serialize_index(self.index_).nbytes / self.n_
        else:
            code = 4.0 * self.dim_ if self.spec_.family == "hnsw" else _code_size(self.index_)
            total = faiss.serialize_index(self.index_).nbytes / self.n_
            # +smooth keeps the normalised and the smoothed float vectors for query expansion
            expansion = 2 * 4.0 * self.dim_ if self.spec_.smooth else 0.0
            return {"code_bytes": code, "index_bytes": round(total + expansion, 1),
                    "query_expansion_bytes": expansion}
        return {"code_bytes": code, "index_bytes": round(total + fixed / self.n_, 1),
                "query_expansion_bytes": 0.0, "fixed_bytes": fixed}

    # -- persistence: the faiss index plus what each family needs beside it ------------------
    def save(self, folder: Path) -> None:
        """Write the fitted index into ``folder`` (the caller swaps the folder in atomically)."""
        import faiss

        check_is_fitted(self)
        folder = Path(folder)
        if self.spec_.learned:
            faiss.write_index_binary(self.index_, str(folder / "index.faiss"))
            np.savez(folder / "query_map.npz", weights=self.query_weights_,
                     bias=self.query_bias_)
        else:
            faiss.write_index(self.index_, str(folder / "index.faiss"))
        if self.spec_.smooth:
            sm = self.smoother_
            np.save(folder / "smooth_base.npy", faiss.rev_swig_ptr(
                sm.index_.get_xb(), sm.index_.ntotal * self.dim_).reshape(-1, self.dim_).copy())
            np.save(folder / "smooth_embedding.npy", sm.embedding_)
        if self.spec_.family == "umap":
            (folder / "umap.pkl").write_bytes(_pickle(self.umap_))

    @classmethod
    def load(cls, folder: Path, codes: str, factory: str, n: int, dim: int) -> CodeIndex:
        """Open an index written by :meth:`save`; the faiss file is memory-mapped where faiss
        can (IVF-PQ is read whole: see below), so a large index opens without reading it
        whole. Raises OSError, RuntimeError or ValueError on damaged files."""
        import faiss

        folder = Path(folder)
        ci = cls(codes)
        ci.spec_ = spec = parse_spec(codes)
        # faiss scans memory-mapped inverted lists ~4x slower than loaded ones (0.77 vs
        # 0.18 ms a query at 200k here); IVF-PQ files are small (code + 8-byte id per
        # image), so they are read whole: 1M images is ~74 MB
        ci.index_ = _read(folder / "index.faiss", binary=spec.learned,
                          mmap=spec.family != "ivfpq")
        ci.factory_, ci.n_, ci.dim_ = factory, n, dim
        if spec.learned:
            with np.load(folder / "query_map.npz") as qm:
                ci.query_weights_, ci.query_bias_ = qm["weights"], qm["bias"]
        if spec.smooth:
            from imgatlas.reduce import KNNSmoother

            base = np.load(folder / "smooth_base.npy")
            sm = KNNSmoother(ci.smooth_neighbors, 2)
            sm.index_ = faiss.IndexFlatIP(base.shape[1])
            sm.index_.add(base)
            sm.embedding_ = np.load(folder / "smooth_embedding.npy")
            sm.n_features_in_ = base.shape[1]
            ci.smoother_ = sm
        if spec.family == "umap":
            import pickle

            try:  # the workspace's own file, written by save()
                ci.umap_ = pickle.loads((folder / "umap.pkl").read_bytes())  # noqa: S301
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
                raise ValueError(f"umap.pkl cannot be read: {e}") from e
        set_search_params(ci.index_)
        return ci


def itq_projection(X: np.ndarray, bits: int, random_state: int = 0, n_iter: int = 50
                   ) -> np.ndarray:
    """Iterative quantisation (Gong & Lazebnik 2011): PCA to ``bits`` dimensions and the
    rotation that best aligns them with the corners of the hypercube; returns the rotated
    projections minus their per-bit median, whose signs are the codes.

    The same algorithm as faiss's ``ITQ{bits},LSHt``, in NumPy: faiss trains it 7x slower
    here (43 s against 6 s for 4,000 x 1280 -> 512 bits on 2 cores).
    """
    from scipy.linalg import eigh

    Xc = X - X.mean(0)
    cov = (Xc.T @ Xc).astype(np.float64)
    d = cov.shape[0]
    _, vecs = eigh(cov, subset_by_index=(d - bits, d - 1))
    V = (Xc @ vecs[:, ::-1].astype(np.float32)).astype(np.float32)
    rng = np.random.default_rng(random_state)
    R = np.linalg.qr(rng.normal(size=(bits, bits)))[0].astype(np.float32)
    for _ in range(n_iter):
        B = np.sign(V @ R)
        u, _, vt = np.linalg.svd(B.T @ V)
        R = (u @ vt).T.astype(np.float32)
    Z = V @ R
    return Z - np.median(Z, axis=0)


def _read(path: Path, binary: bool = False, mmap: bool = True) -> Any:
    """Memory-map the index where faiss can (opening a 1M index then costs no copy)."""
    import faiss

    read = faiss.read_index_binary if binary else faiss.read_index
    if mmap:
        flags = faiss.IO_FLAG_MMAP if binary else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        try:
            return read(str(path), flags)
        except RuntimeError:  # a type faiss cannot map: read it whole
            pass
    return read(str(path))


def _code_size(index: Any) -> float:
    """Bytes one vector costs in ``index``'s codes (graph links not counted)."""
    import faiss

    if isinstance(index, faiss.IndexRefine):  # the PQ code plus the re-ranking vector
        return (_code_size(faiss.downcast_index(index.base_index))
                + _code_size(faiss.downcast_index(index.refine_index)))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:  # a vector's list is where it is stored, not part of its code
        return float(ivf.code_size)
    try:
        return float(index.sa_code_size())
    except RuntimeError:  # HNSW over PQ has no standalone codec: its storage's codes
        return float(faiss.downcast_index(index.storage).sa_code_size())


def _pickle(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


EF_SEARCH = 128  # graph search breadth (float and binary HNSW)
NPROBE = 16  # IVF lists probed per query
# IVF indexes train their lists (and residual PQ) on at most this many vectors: 64 per list
# at 1M images (4,000 lists; faiss asks for >= 39). At 1M this cut the ivfpq:64 build from
# 261 to 148 s with the same recall (benchmarks/bench_search_scale.py). Not for the other
# families: a graph over PQ codes trained on a 262k sample lost recall on the synthetic set
# (hnswpq:64 1-recall@10 0.953 -> 0.880 and 0.927 for two sample seeds), and their training
# is cheap.
TRAIN_SAMPLE = 262_144


def _training_sample(X: np.ndarray, seed: int | None) -> np.ndarray:
    if len(X) <= TRAIN_SAMPLE:
        return X
    rows = np.random.default_rng(seed).choice(len(X), TRAIN_SAMPLE, replace=False)
    return np.ascontiguousarray(X[np.sort(rows)])


def set_search_params(index: Any, ef_search: int | None = None, nprobe: int | None = None
                      ) -> tuple[bool, bool]:
    """Search-time settings that faiss does not save with an index: the breadth of a graph
    search (float or binary HNSW) and the number of IVF lists probed. Returns which of the
    two the index has."""
    import faiss

    if isinstance(index, faiss.IndexRefine):
        index.k_factor = REFINE_FACTOR
        index = faiss.downcast_index(index.base_index)
    graph = hasattr(index, "hnsw")
    if graph:
        index.hnsw.efSearch = ef_search or EF_SEARCH
    ivf = faiss.try_extract_index_ivf(index) if isinstance(index, faiss.Index) else None
    if ivf is not None:
        ivf.nprobe = min(nprobe or NPROBE, ivf.nlist)
    return graph, ivf is not None


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
