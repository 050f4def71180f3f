"""What every code family is: fit on unit vectors, prepare queries, search, size, save."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.index._faiss_util import set_search_params
from imgatlas.index._spec import CODES, Spec


def register_family(cls: type[CodeFamily]) -> type[CodeFamily]:
    """Class decorator: put a family in the ``CODES`` registry with what its spec takes."""
    CODES.register(cls.name, help=cls.help, size=cls.size_meaning,
                   default_size=cls.default_size, modifiers=sorted(cls.modifiers),
                   bits=cls.bits, fit_sample=cls.fit_sample, why_not=cls.why_not)(cls)
    return cls


class CodeFamily:
    """One family of codes. Subclasses set the class attributes and override what differs.

    The collection is given as L2-normalised float32 vectors; search scores are higher-is-
    closer for similarity indexes (inner product) and negated distances otherwise.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    default_size: ClassVar[int | None] = None
    size_meaning: ClassVar[str | None] = None  # e.g. "BYTES", "BITS"
    modifiers: ClassVar[frozenset[str]] = frozenset()
    bits: ClassVar[bool] = False  # size counts bits (a multiple of 8)
    fit_sample: ClassVar[bool] = False  # takes @N
    why_not: ClassVar[dict[str, str]] = {}
    binary: ClassVar[bool] = False  # Hamming distances over packed codes

    def __init__(self, spec: Spec, *, smooth_neighbors: int = 10, ridge_alpha: float = 1.0,
                 random_state: int = 0) -> None:
        self.spec = spec
        self.smooth_neighbors = smooth_neighbors
        self.ridge_alpha = ridge_alpha
        self.random_state = random_state
        self.index: Any = None
        self.factory = ""
        self.n = 0
        self.dim = 0

    @classmethod
    def for_spec(cls, spec: Spec, **kw: Any) -> CodeFamily:
        """The instance for ``spec`` (a family may hand a modifier to a subclass)."""
        return cls(spec, **kw)

    # -- fitting and searching --------------------------------------------------------------
    def fit(self, X: np.ndarray) -> CodeFamily:
        raise NotImplementedError

    def transform_queries(self, Q: np.ndarray) -> np.ndarray:
        """Unit query vectors -> what :meth:`search` takes."""
        return Q

    def member_queries(self, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Prepared queries for members of the collection (``rows``, their vectors ``X``)."""
        return self.transform_queries(X)

    def search(self, prepared: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``: higher is closer; rows index the fitted collection."""
        dist, rows = self.index.search(prepared, min(k, self.n))
        return (dist if self.similarity else -dist), rows

    @property
    def similarity(self) -> bool:
        import faiss

        return not self.binary and self.index.metric_type == faiss.METRIC_INNER_PRODUCT

    def similarities(self, scores: np.ndarray) -> np.ndarray:
        """Search scores as a person reads them: 0..1, higher is closer, the cosine of the
        two images' features as well as the codes can tell it. Inner products of unit
        vectors are cosines already; squared distances between unit vectors d^2 are
        2 - 2 cos; a Hamming distance h of B bits is read as 1 - 2 h / B (0 for unrelated
        codes, which differ in half their bits). Only a guide: searches that have the
        vectors give the exact cosine instead (``index/_search.py``)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.similarity:
            cos = s
        elif self.binary or self.spec.family in ("sign", "itq"):
            cos = 1.0 + 2.0 * s / float(self.spec.size)
        else:
            cos = 1.0 + s / 2.0
        return np.clip(cos, 0.0, 1.0)

    def set_search(self, ef_search: int | None, nprobe: int | None) -> tuple[bool, bool]:
        return set_search_params(self.index, ef_search, nprobe)

    # -- size and persistence -----------------------------------------------------------------
    def bytes_per_image(self) -> dict[str, float]:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        raise NotImplementedError

    def load(self, folder: Path) -> None:
        """Fill a fresh instance (``n``, ``dim``, ``factory`` already set) from ``folder``."""
        raise NotImplementedError

    def check_fits(self, n: int, d: int, *, dims: bool = True, images: bool = True) -> None:
        """A size larger than the features (``dims``) or than the images (``images``) is a
        one-line error rather than a faiss assertion."""
        size = self.spec.size
        if dims and size is not None and size > d:
            raise ConfigError(f"{self.spec} exceeds the feature dimension {d}.")
        if images and size is not None and size >= n:
            raise ConfigError(f"{self.spec} needs more images than {size} to fit; have {n}.")
