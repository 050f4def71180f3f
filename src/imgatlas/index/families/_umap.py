"""``umap:D[@N]``: D floats per image from a cosine UMAP of the features."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.index._faiss_util import from_pickle, read_index, to_pickle
from imgatlas.index.families._base import CodeFamily, register_family


@register_family
class UMAPCodes(CodeFamily):
    """Searched by Euclidean distance in the embedding (the SBIR study's best codes for mAP).

    A query is placed by ``UMAP.transform``, which needs the fitted model: the images UMAP
    was fitted on (N x d floats) and its neighbour index. That model is the memory cost of
    these codes (``fixed_bytes``), so ``@N`` fits on N sampled images and maps the rest with
    ``transform``: a smaller model and a faster fit, for some quality.
    """

    name = "umap"
    help = "D floats from a cosine UMAP, Euclidean search; @N fits on N sampled images"
    default_size, size_meaning, fit_sample = 16, "D", True
    why_not = {"smooth": "umap codes are already a neighbour-graph embedding"}

    def fit(self, X: np.ndarray) -> UMAPCodes:
        import faiss

        from imgatlas.reduce import UMAPReducer

        n, d = X.shape
        dims = self.spec.size
        if n <= dims:
            raise ConfigError(f"{self.spec} needs more images than {dims} to fit; have {n}.")
        fit_rows = np.arange(n)
        if self.spec.fit_size is not None and self.spec.fit_size < n:
            rng = np.random.default_rng(self.random_state)
            fit_rows = np.sort(rng.choice(n, self.spec.fit_size, replace=False))
        reducer = UMAPReducer(n_components=dims, n_neighbors=15, min_dist=0.0, metric="cosine",
                              random_state=self.random_state).fit(X[fit_rows])
        E = np.empty((n, dims), np.float32)
        E[fit_rows] = reducer.embedding_
        rest = np.setdiff1d(np.arange(n), fit_rows)
        if len(rest):
            E[rest] = reducer.transform(X[rest])
        index = faiss.IndexFlatL2(dims)
        index.add(np.ascontiguousarray(E))
        self.umap = reducer
        self.index, self.n, self.dim = index, n, d
        self.factory = f"UMAP{dims} (cosine, fitted on {len(fit_rows)} images), Flat L2"
        return self

    def transform_queries(self, Q: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.umap.transform(Q), dtype=np.float32)

    def member_queries(self, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
        # a UMAP embedding is not reproduced by transform: a member queries with its stored
        # position (the study's leave-one-out protocol; also search by image id)
        return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def similarities(self, scores: np.ndarray) -> np.ndarray:
        # distances in the UMAP layout have no cosine: 1 / (1 + d^2) keeps the order in 0..1
        return 1.0 / (1.0 + np.maximum(-np.asarray(scores, dtype=np.float64), 0.0))

    def bytes_per_image(self) -> dict[str, float]:
        import faiss

        fixed = float(len(to_pickle(self.umap)))
        total = faiss.serialize_index(self.index).nbytes / self.n
        return {"code_bytes": 4.0 * self.spec.size,
                "index_bytes": round(total + fixed / self.n, 1),
                "query_expansion_bytes": 0.0, "fixed_bytes": fixed}

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(folder / "index.faiss"))
        (folder / "umap.pkl").write_bytes(to_pickle(self.umap))

    def load(self, folder: Path) -> None:
        self.index = read_index(folder / "index.faiss")
        self.umap = from_pickle((folder / "umap.pkl").read_bytes(), "umap.pkl")
