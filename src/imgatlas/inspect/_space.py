"""Where inspect finds each image's nearest images by features, in memory that does not grow
with the collection beyond a small code per image.

Up to :data:`EXACT_UP_TO` images: the unit feature vectors themselves, searched exactly.
Above: each unit vector ``x`` projected on the top :data:`REDUCED_DIM` directions of the
collection's second moment (``W``, fitted on a seeded sample); the code ``Wx / |Wx|`` kept in
an inverted file and searched by cosine, with ``|Wx|`` and the norm of what the projection
leaves out, ``r = |x - WᵀWx|``. Because the left-out parts are orthogonal to the kept ones,

    cos(x, y) = Wx·Wy + r_x·r_y·cos(left-out parts),  so  |cos(x, y) - Wx·Wy| <= r_x·r_y:

every rule on a cosine can be decided from the codes where the bound leaves no doubt, and
the exact cosine is read from the store only for the pairs it does (a few per image at
most). A million images cost 64 floats and an id each in the index (~270 MB), plus a
shard's vectors while it is searched.

Searched by cosine, not by inner product: pictures unlike the sample the directions were
fitted on keep little of themselves in the codes (a short ``Wx``), and by inner product
their nearest were whatever had long codes. Planted photos among a million thumbnails
(benchmarks/bench_million.py) kept |Wx| = 0.54 of their length against 0.89 for the
thumbnails: by inner product none of 60 cropped or tilted copies and its original were each
other's nearest, by cosine 58 were (all 60 in the full vectors).

The space pickles its index with it (``faiss.serialize_index``), so a Ray task gets it
through the object store once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgatlas._shards import StoreFile, sample_rows

EXACT_UP_TO = 50_000  # exact search of the full vectors up to this many images
REDUCED_DIM = 64  # kept directions above it: 64 gave the planted copies' nearest images
# as the full 1280 did (benchmarks/bench_million.py), at a fifth of 128's search time
FIT_SAMPLE = 100_000  # vectors the projection and the inverted lists are fitted on
NPROBE = 6  # inverted lists searched per query; a copy's vector lies in its original's
# list or a neighbouring one, unless the codes describe both poorly:
# Images the codes describe poorly (|Wx| more than ATYPICAL_SPREAD robust spreads below the
# typical) are also searched exactly among themselves: a copy of such an image is such an
# image too. At most ATYPICAL_MAX of them, the worst described first. The inverted lists
# are fitted to the many; on planted photos among a million thumbnails (|Wx| 0.54 against
# 0.89) 6 lists found 43 of 60 cropped or tilted copies as their originals' nearest, 48
# lists 57: the exact search among the 0.07 % that are photos finds all 60.
ATYPICAL_SPREAD = 3.0
ATYPICAL_MAX = 20_000


@dataclass
class SearchSpace:
    source: StoreFile
    ids: np.ndarray  # (n,) image ids, ascending: row r of the space is image ids[r]
    W: np.ndarray | None  # (d, dim) projection; None: the full vectors, exact search
    kept: np.ndarray  # (n,) float32 |Wx| (ones when exact)
    index: Any = field(repr=False)
    atypical: SearchSpace | None = None  # the poorly described rows' exact space
    atypical_rows: np.ndarray | None = None  # its rows, as rows of this space

    @classmethod
    def build(cls, source: StoreFile, ids: np.ndarray, *, exact_up_to: int | None = None,
              seed: int = 0, chunk: int = 32_768) -> SearchSpace:
        """The space of the vectors of ``ids`` (ascending), read from ``source`` in chunks;
        exact up to ``exact_up_to`` images (default :data:`EXACT_UP_TO`)."""
        import faiss

        ids = np.asarray(ids, dtype=np.int64)
        n, dim = len(ids), source.dim
        if n <= (EXACT_UP_TO if exact_up_to is None else exact_up_to):
            index = faiss.IndexFlatIP(dim)
            for a in range(0, n, chunk):
                index.add(unit(source.rows(ids[a:a + chunk])))
            return cls(source, ids, None, np.ones(n, np.float32), index)
        sample = unit(source.rows(ids[sample_rows(n, FIT_SAMPLE, seed)]))
        d = min(REDUCED_DIM, dim, len(sample))
        # the top directions of the second moment (not the covariance: no mean is taken
        # out, so the left-out part is orthogonal to the kept one and the bound holds)
        _, _, vt = np.linalg.svd(sample.T @ sample / len(sample), hermitian=True)
        W = np.ascontiguousarray(vt[:d], dtype=np.float32)
        nlist = int(np.clip(4 * np.sqrt(n), 1, max(1, len(sample) // 32)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 8  # no warning: 25 a list fits these lists well
        index.cp.max_points_per_centroid = 64  # k-means on at most 64 points a list
        index.train(unit(sample @ W.T))
        del sample
        index.make_direct_map(True)  # the codes of any row, for the pairs' bounds
        index.nprobe = min(NPROBE, nlist)
        kept = np.empty(n, np.float32)
        for a in range(0, n, chunk):
            P = unit(source.rows(ids[a:a + chunk])) @ W.T
            kept[a:a + len(P)] = np.linalg.norm(P, axis=1)
            index.add(unit(P))
        space = cls(source, ids, W, kept, index)
        mad = float(np.median(np.abs(kept - np.median(kept)))) * 1.4826
        low = np.flatnonzero(kept < np.median(kept) - ATYPICAL_SPREAD * max(mad, 1e-3))
        if len(low):
            low = np.sort(low[np.argsort(kept[low], kind="stable")[:ATYPICAL_MAX]])
            space.atypical = cls.build(source, ids[low], exact_up_to=ATYPICAL_MAX)
            space.atypical_rows = low
        return space

    @property
    def exact(self) -> bool:
        return self.W is None

    @property
    def residual(self) -> np.ndarray:
        """(n,) the norm of what the codes leave out of each unit vector."""
        return np.sqrt(np.clip(1.0 - self.kept.astype(np.float64) ** 2, 0.0, None)
                       ).astype(np.float32)

    def projected(self, cosine: np.ndarray, rows: np.ndarray, others: np.ndarray
                  ) -> np.ndarray:
        """``Wx·Wy`` of row pairs from the cosine of their codes (the cosine itself when
        exact)."""
        if self.exact:
            return cosine
        return cosine * self.kept[rows] * self.kept[others]

    def query(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows' unit vectors, read from the store, and their codes (the same when exact)."""
        X = unit(self.source.rows(self.ids[rows]))
        return X, (X if self.W is None else unit(X @ self.W.T))

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosines and rows of the ``k`` nearest rows of each code (when exact: the
        features' cosines; else the codes')."""
        return self.index.search(np.ascontiguousarray(codes), min(k, len(self.ids)))

    def nearest(self, rows: np.ndarray, X: np.ndarray, codes: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cosines, rows, exact)``: the ``k`` nearest rows of each of ``rows`` (unit
        vectors ``X``, codes ``codes``), and whether a row's cosines are the features'
        (the exact space, or an atypical row: its nearest from the codes and from the
        atypical rows, ranked by their exact cosines) or the codes'."""
        sims, nn = self.search(codes, k)
        exact = np.full(len(rows), self.exact)
        if self.atypical is None or self.atypical_rows is None:
            return sims, nn, exact
        q = np.flatnonzero(np.isin(rows, self.atypical_rows))
        if not len(q):
            return sims, nn, exact
        s2, n2 = self.atypical.search(X[q], k)
        n2 = np.where(n2 >= 0, self.atypical_rows[np.maximum(n2, 0)], -1)
        s1 = np.concatenate([  # in blocks: the repeated vectors cost memory
            self.cosines(np.repeat(X[q[a:a + 1024]], nn.shape[1], axis=0),
                         np.maximum(nn[q[a:a + 1024]], 0).ravel()).reshape(-1, nn.shape[1])
            for a in range(0, len(q), 1024)])
        for t, r in enumerate(q.tolist()):
            best: dict[int, float] = {}
            for o, c in zip([*nn[r].tolist(), *n2[t].tolist()], [*s1[t], *s2[t]],
                            strict=True):
                if o >= 0:
                    best[o] = max(best.get(o, -2.0), float(c))
            top = sorted(best.items(), key=lambda oc: -oc[1])[:nn.shape[1]]
            nn[r], sims[r] = -1, -np.inf
            nn[r, :len(top)] = [o for o, _ in top]
            sims[r, :len(top)] = [c for _, c in top]
        exact[q] = True
        return sims, nn, exact

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """The stored codes of ``rows`` (for the exact space: the unit vectors)."""
        if not len(rows):
            return np.zeros((0, self.index.d), np.float32)
        return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def cosines(self, X: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Exact cosines of unit vectors ``X[k]`` with row ``others[k]``, the others' vectors
        read from the store once each."""
        if not len(others):
            return np.zeros(0, np.float32)
        if self.exact:
            return np.einsum("ij,ij->i", X, self.codes(others))
        uniq, inverse = np.unique(others, return_inverse=True)
        out = np.empty(len(others), np.float32)
        for a in range(0, len(uniq), 8192):  # gathered vectors cost memory: in blocks
            block = unit(self.source.rows(self.ids[uniq[a:a + 8192]]))
            at = np.flatnonzero((inverse >= a) & (inverse < a + 8192))
            out[at] = np.einsum("ij,ij->i", X[at], block[inverse[at] - a])
        return out

    def __getstate__(self) -> dict[str, Any]:
        import faiss

        state = dict(self.__dict__)
        state["index"] = faiss.serialize_index(self.index)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import faiss

        state["index"] = faiss.deserialize_index(state["index"])
        self.__dict__.update(state)


def unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in place (float32)."""
    X = np.asarray(X, dtype=np.float32)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X
