"""``itq:B+learn`` and ``itq:B+dsh``: binary codes from a layer learned on the collection's
neighbour structure (never its labels); Hamming search, exhaustive or over a binary graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from imgatlas.index._faiss_util import (
    faiss_codes,
    pack,
    read_index,
    set_search_params,
    unpack_pm,
)
from imgatlas.index.families._base import CodeFamily


class LearnedITQCodes(CodeFamily):
    """The ``itq`` family's learned modifiers (registered through :class:`ITQCodes`)."""

    binary = True
    shortlist: ClassVar[int] = 64  # Hamming candidates re-ranked before query expansion
    # exhaustive Hamming search costs ~1 ms per 100k codes per search: a graph above this
    binary_graph_from: ClassVar[int] = 200_000
    qe_neighbours: ClassVar[int] = 10
    qe_rounds: ClassVar[int] = 1  # a second round moved mAP by +-0.002
    dsh_epochs: ClassVar[int] = 10
    dsh_alpha: ClassVar[float] = 1.0  # binarisation weight; 0.1 / 0.3 / 1.0 compared

    def fit(self, X: np.ndarray) -> LearnedITQCodes:
        """``itq:B+learn``: the compact code that learns from the collection's neighbours.

        1. The collection is smoothed over its kNN graph (as ``+smooth``) and its smoothed
           vectors are encoded with ITQ: B bits per image, searched by Hamming distance.
        2. A linear map (ridge regression, closed form) is fitted from each image's raw
           vector to the ITQ projection of its smoothed vector. A query, which has no
           neighbours of its own yet, is mapped by it: the map has learned what smoothing
           does to an image like it. This is the study's sigmoid-threshold layer
           (sign(Wx + b) = [sigmoid(Wx + b) > 0.5]) trained on neighbour structure, not labels.
        3. Query expansion in code space: the query's 10 nearest codes (Hamming shortlist of
           ``shortlist``, re-ranked by the asymmetric score <Wx + b, code>) are added, as
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
        bits = self.spec.size
        self.check_fits(n, d)
        smoother = KNNSmoother(self.smooth_neighbors, 2)
        S = np.ascontiguousarray(smoother.fit_transform(X))
        target = itq_projection(S, bits, self.random_state)
        ridge = Ridge(alpha=self.ridge_alpha).fit(X, target)
        self.query_weights = np.ascontiguousarray(ridge.coef_.T, dtype=np.float32)  # d x B
        self.query_bias = ridge.intercept_.astype(np.float32)
        method = f"ITQ{bits} of kNN-smoothed vectors"
        if self.spec.modifier == "dsh":
            from imgatlas.index._dsh import train_dsh

            neighbours = knn_graph(S, self.smooth_neighbors, smoother.exact_below)
            self.query_weights, self.query_bias = train_dsh(
                X, self.query_weights, self.query_bias, neighbours,
                epochs=self.dsh_epochs, alpha=self.dsh_alpha, random_state=self.random_state)
            target = X @ self.query_weights + self.query_bias
            method = f"DSH-trained layer (from {method})"
        if n >= self.binary_graph_from:
            index = faiss.IndexBinaryHNSW(bits, 32)
            index.hnsw.efConstruction = 80
            kind = "BinaryHNSW32"
        else:
            index = faiss.IndexBinaryFlat(bits)
            kind = "BinaryFlat"
        index.add(pack(target))
        set_search_params(index)
        self.index = index
        queries = "same layer for queries" if self.spec.modifier == "dsh" else "ridge query map"
        self.factory = f"{method}, {kind}; {queries}"
        self.n = n
        self.dim = d
        return self

    def transform_queries(self, Q: np.ndarray) -> np.ndarray:
        # No numpy matmul on this path: a small BLAS call leaves OpenBLAS's threads spinning
        # and faiss's OpenMP threads then wait for the cores (single queries measured 8 ms
        # at p50 that way, instead of under 1 ms). faiss applies the map; the rest is
        # elementwise.
        bits = self.spec.size
        z = self._query_map().apply(np.ascontiguousarray(Q, dtype=np.float32))
        z *= np.sqrt(bits) / np.maximum(np.sqrt((z * z).sum(1, keepdims=True)), 1e-12)
        short = min(self.shortlist, self.n)
        codes = self._codes()
        cur = z
        for _ in range(self.qe_rounds):
            _, cand = self.index.search(pack(cur), short)
            out = np.empty_like(z)
            for i, row in enumerate(cand):
                pm = unpack_pm(codes[row[row >= 0]], bits)
                top = np.argsort(-(pm * cur[i]).sum(1), kind="stable")[: self.qe_neighbours]
                out[i] = z[i] + pm[top].sum(0)
            cur = out
        return pack(cur)

    def _query_map(self) -> Any:
        import faiss

        lt = getattr(self, "_query_map_lt", None)
        if lt is None:
            d, bits = self.query_weights.shape
            lt = faiss.LinearTransform(d, bits, True)
            faiss.copy_array_to_vector(
                np.ascontiguousarray(self.query_weights.T).ravel(), lt.A)  # row-major B x d
            faiss.copy_array_to_vector(self.query_bias.astype(np.float32), lt.b)
            lt.is_trained = True
            self._query_map_lt = lt
        return lt

    def _codes(self) -> np.ndarray:
        """The collection's packed codes as an (n, B/8) uint8 view (no copy)."""
        import faiss

        cached = getattr(self, "_codes_view", None)
        if cached is None or len(cached) != self.n:
            flat = self.index
            if isinstance(flat, faiss.IndexBinaryHNSW):
                flat = faiss.downcast_IndexBinary(flat.storage)
            cached = faiss_codes(flat, self.spec.size // 8)
            self._codes_view = cached
        return cached


    def bytes_per_image(self) -> dict[str, float]:
        import faiss

        fixed = 4.0 * (self.query_weights.size + self.query_bias.size)
        total = faiss.serialize_index_binary(self.index).nbytes / self.n
        return {"code_bytes": self.spec.size / 8,
                "index_bytes": round(total + fixed / self.n, 1),
                "query_expansion_bytes": 0.0, "fixed_bytes": fixed}

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index_binary(self.index, str(folder / "index.faiss"))
        np.savez(folder / "query_map.npz", weights=self.query_weights, bias=self.query_bias)

    def load(self, folder: Path) -> None:
        self.index = read_index(folder / "index.faiss", binary=True)
        with np.load(folder / "query_map.npz") as qm:
            self.query_weights, self.query_bias = qm["weights"], qm["bias"]
        set_search_params(self.index)


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


