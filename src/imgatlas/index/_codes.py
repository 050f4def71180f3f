"""``CodeIndex``: a search index over unit vectors, one estimator whatever the code family.

The family (``index/families/``) does the work; this class parses the spec, normalises the
vectors, and gives every family the same face: ``fit``, ``search``, ``set_search``,
``bytes_per_image``, ``save``/``load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize

from imgatlas._validation import check_is_fitted
from imgatlas.errors import ConfigError
from imgatlas.index import families  # noqa: F401  (registers the families)
from imgatlas.index._spec import CODES, Spec, parse_spec
from imgatlas.index.families import CodeFamily


def _unit(X: Any, copy: bool = True) -> np.ndarray:
    """Unit rows as float32; ``copy=False`` normalises a float32 array in place (a sharded
    build's 262k-vector training sample is then held once)."""
    return np.ascontiguousarray(normalize(np.asarray(X, dtype=np.float32), copy=copy),
                                dtype=np.float32)


def _family(spec: Spec, **kw: Any) -> CodeFamily:
    return CODES[spec.family].factory.for_spec(spec, **kw)


class CodeIndex(BaseEstimator):
    """One faiss index over L2-normalised vectors, ranked by cosine (or Hamming for binary
    codes, which approximate it). ``fit(X)`` trains and adds; ``search(Q, k)`` ranks."""

    def __init__(self, spec: str = "float", smooth_neighbors: int = 10,
                 ridge_alpha: float = 1.0, random_state: int = 0) -> None:
        self.spec = spec
        self.smooth_neighbors = smooth_neighbors
        self.ridge_alpha = ridge_alpha
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> CodeIndex:
        self.spec_ = parse_spec(self.spec)
        self.family_ = _family(self.spec_, smooth_neighbors=self.smooth_neighbors,
                               ridge_alpha=self.ridge_alpha,
                               random_state=self.random_state).fit(_unit(X))
        return self

    # what every family has, under the names the stages and benchmarks use
    @property
    def index_(self) -> Any:
        return self.family_.index

    @property
    def factory_(self) -> str:
        return self.family_.factory

    @property
    def n_(self) -> int:
        return self.family_.n

    @property
    def dim_(self) -> int:
        return self.family_.dim

    def transform_queries(self, Q: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.family_.transform_queries(_unit(Q))

    def member_queries(self, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Prepared queries for members of the collection (``rows``, their vectors ``X``)."""
        check_is_fitted(self)
        return self.family_.member_queries(rows, _unit(X))

    def search(self, Q: Any, k: int = 10, *, prepared: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``: higher score = closer; rows index the fitted collection."""
        check_is_fitted(self)
        if not prepared:
            Q = self.transform_queries(Q)
        return self.family_.search(Q, k)

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
        graph, ivf = self.family_.set_search(ef_search, nprobe)
        if ef_search is not None and not graph:
            raise ConfigError(f"ef_search applies to graph indexes (hnsw, hnswpq); the "
                              f"{self.spec_} index here is {self.factory_}.")
        if nprobe is not None and not ivf:
            raise ConfigError(f"nprobe applies to ivfpq indexes; the {self.spec_} index here "
                              f"is {self.factory_}.")
        return self

    def similarities(self, scores: Any) -> np.ndarray:
        """:meth:`search` scores as 0..1 similarities, higher is closer (an estimate of the
        features' cosine from the codes; see each family)."""
        check_is_fitted(self)
        return self.family_.similarities(scores)

    @property
    def metric_is_similarity(self) -> bool:
        return self.family_.similarity

    def bytes_per_image(self) -> dict[str, float]:
        """Code bytes (what one image costs in the codes) and the serialised index per image
        (codes + graph/transform overhead). Learned and UMAP codes also report
        ``fixed_bytes``, what they keep once for the whole collection (the query layer,
        the UMAP model), spread over the images in ``index_bytes``."""
        check_is_fitted(self)
        return self.family_.bytes_per_image()

    def save(self, folder: Path) -> None:
        """Write the fitted index into ``folder`` (the caller swaps the folder in atomically)."""
        check_is_fitted(self)
        self.family_.save(Path(folder))

    @classmethod
    def load(cls, folder: Path, codes: str, factory: str, n: int, dim: int) -> CodeIndex:
        """Open an index written by :meth:`save` (memory-mapped where faiss can). Raises
        OSError, RuntimeError or ValueError on damaged files."""
        ci = cls(codes)
        ci.spec_ = parse_spec(codes)
        fam = _family(ci.spec_)
        fam.factory, fam.n, fam.dim = factory, n, dim
        fam.load(Path(folder))
        ci.family_ = fam
        return ci
