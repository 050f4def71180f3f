"""The line branch fitted on the collection being searched: a ridge map from each photo's
line-map features to its photo features.

A photo and its line map are two views of one object, so the collection's own photos teach
the line domain where the photo domain puts things, with no label and no sketch. Each
domain is first centred on its own mean (unit-length features, then the mean removed): most
of what separates a drawing from a photo is a constant offset, and the ridge map learns the
rest. A sketch is centred on the *sketch* domain's mean, estimated as the collection's
line-map mean plus a shipped offset (sketches minus line maps, measured once on the dev
Sketchy pairs by ``scripts/make_sketch_shift.py``; a constant of the backbone and the line
detector, not of the classes).

Measured on the dev Sketchy set, 15 classes fitted and searched, 4 splits (the offset taken
from the other 15 classes' pairs; benchmarks/bench_sketch.py): mAP 0.218 (photo and line
domains fused, no map) -> 0.459 with the map (λ = 1), 0.51 with query expansion. The map
fitted on photos of *other* classes gains almost nothing beyond centring: it works because it
is fitted on the photos a person searches, which ``index --sketch`` always has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted, validate_data

from imgatlas._package_data import package_file

ALPHA = 1.0  # ridge strength on unit-length, centred features (0.3-3 within 1 point on dev)
MAX_PHOTOS = 50_000  # the map is fitted on at most this many photos (a seeded sample)
SHIFT_FILE = "sketch_shift.npz"


class LineToPhotoMap(TransformerMixin, BaseEstimator):
    """Ridge regression from line-map features ``X`` to photo features ``y`` (one row per
    photo), each domain unit-length and centred on its mean.

    ``transform`` takes line-domain queries (sketches): unit length, centred on the sketch
    domain's mean (``line_mean_ + sketch_shift``), mapped, unit length again: vectors to
    compare by inner product with :meth:`photos`. ``sketch_shift``: the sketch domain's mean
    minus the line maps' mean (None: no offset).
    """

    def __init__(self, alpha: float = ALPHA, sketch_shift: np.ndarray | None = None,
                 max_photos: int = MAX_PHOTOS, random_state: int | None = 0) -> None:
        self.alpha = alpha
        self.sketch_shift = sketch_shift
        self.max_photos = max_photos
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # what an index stores
        tags.target_tags.required = True
        return tags

    def fit(self, X: np.ndarray, y: np.ndarray) -> LineToPhotoMap:
        X, y = validate_data(self, X, y, multi_output=True, dtype=np.float64,
                             y_numeric=True)
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive. Got {self.alpha} instead.")
        Y = y.reshape(len(y), -1)
        if len(X) > self.max_photos:
            keep = np.random.default_rng(self.random_state).choice(
                len(X), self.max_photos, replace=False)
            X, Y = X[keep], Y[keep]
        Xn, Yn = normalize(X), normalize(Y)
        self.line_mean_ = Xn.mean(0)
        self.photo_mean_ = Yn.mean(0)
        Xc, Yc = Xn - self.line_mean_, Yn - self.photo_mean_
        gram = Xc.T @ Xc
        gram[np.diag_indices_from(gram)] += self.alpha
        self.coef_ = linalg.solve(gram, Xc.T @ Yc, assume_a="pos")
        shift = np.zeros(X.shape[1]) if self.sketch_shift is None else \
            np.asarray(self.sketch_shift, np.float64)
        if shift.shape != (X.shape[1],):
            raise ValueError(f"sketch_shift has {shift.shape} values; the features have "
                             f"{X.shape[1]}.")
        self.sketch_mean_ = self.line_mean_ + shift
        self.n_photos_ = len(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return normalize((normalize(X) - self.sketch_mean_) @ self.coef_).astype(np.float32)

    def photos(self, P: np.ndarray) -> np.ndarray:
        """The gallery side: photo features, unit length, centred, unit length again."""
        check_is_fitted(self)
        return normalize(normalize(np.asarray(P, np.float64)) - self.photo_mean_).astype(
            np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the sketch index stores (float32)."""
        check_is_fitted(self)
        return {k: getattr(self, k).astype(np.float32) for k in
                ("coef_", "line_mean_", "photo_mean_", "sketch_mean_")}

    @classmethod
    def from_arrays(cls, arrays: Any, **params: Any) -> LineToPhotoMap:
        m = cls(**params)
        for k in ("coef_", "line_mean_", "photo_mean_", "sketch_mean_"):
            setattr(m, k, np.asarray(arrays[k], np.float64))
        m.n_features_in_ = m.coef_.shape[0]
        return m


def shift_key(backbone: str, detector: str) -> str:
    return f"{backbone}__{detector}"


def shipped_shift(backbone: str, detector: str) -> np.ndarray | None:
    """The sketch domain's offset from the line maps for this backbone and line detector,
    as shipped (None when the package holds none for them)."""
    with np.load(package_file(f"sketch/{SHIFT_FILE}")) as z:
        key = shift_key(backbone, detector)
        return np.asarray(z[key], np.float64) if key in z.files else None


def domain_shift(sketches: np.ndarray, line_maps: np.ndarray) -> np.ndarray:
    """The offset :class:`LineToPhotoMap` adds to the line maps' mean to centre sketches:
    mean of the unit-length sketch features minus that of the line maps'."""
    return normalize(np.asarray(sketches, np.float64)).mean(0) - \
        normalize(np.asarray(line_maps, np.float64)).mean(0)
