"""One shard of the comparison: a slice of the new images, each searched against the whole
collection, the candidate pairs measured and kept only where a rule of
:mod:`~imgatlas.inspect._rules` could call them copies.

A shard reads only its own images' vectors (and the few others its kept pairs need exactly);
everything else it reads is per-image codes and hashes shared by all shards. So shards run
one after another in this process or as Ray tasks, with the same result: each is a pure
function of the shared tables and its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgatlas.inspect._pixels import TURNS
from imgatlas.inspect._rules import (
    FRAMED,
    FRAMED_HASH,
    K_FEATURES,
    K_HASH,
    K_NEIGHBOURS,
    K_TURNED,
    TURNED_HASH,
    ZONES,
    PairMeasures,
    decide,
)
from imgatlas.inspect._space import SearchSpace

HASH_EXACT_UP_TO = 50_000  # exact hash search up to this many images, inverted file above
HASH_NPROBE = 16


@dataclass
class Collection:
    """What inspect compares, per row of the search space: hashes and what decides pairs."""

    bits: np.ndarray  # (n, 8) uint8 perceptual hashes
    turns: np.ndarray  # (n, len(TURNS), 8) uint8: the hashes of TURNS' views
    content: np.ndarray  # (n,) one number per distinct content (same bytes, same number)
    big: np.ndarray  # (n,) large enough for keypoints
    new: np.ndarray  # (n,) compared in this inspection
    hashes: Any = field(default=None, repr=False)  # the hash indexes (see :meth:`index`)

    def __post_init__(self) -> None:
        order = np.argsort(self.content, kind="stable")
        self._by_content = order
        self._content_start = np.searchsorted(self.content[order], self.content, "left")
        self._content_stop = np.searchsorted(self.content[order], self.content, "right")

    def index(self) -> Collection:
        """Builds the hash indexes once (the plain hashes; the large pictures' hashes and
        frames' contents, which the turned views are searched in)."""
        among = np.flatnonzero(self.big)
        self.hashes = {"plain": hash_index(self.bits), "among": among,
                       "big": hash_index(self.bits[among]),
                       "framed": hash_index(self.turns[among, FRAMED])}
        return self

    def same_content(self, rows: np.ndarray) -> np.ndarray:
        """``(m, 2)`` pairs: each row with the first row of its content, and that one with
        all of them (a star: it groups them as all pairs would, with n - 1 pairs, not n²/2
        for a picture stored a thousand times)."""
        out = []
        for r in rows[(self._content_stop[rows] - self._content_start[rows]) > 1].tolist():
            others = self._by_content[self._content_start[r]:self._content_stop[r]]
            first = int(others[0])
            out += ([(r, o) for o in others[1:].tolist()] if r == first else [(r, first)])
        return np.array(out, dtype=np.int64).reshape(-1, 2)

    def __getstate__(self) -> dict[str, Any]:
        import faiss

        state = dict(self.__dict__)
        if self.hashes is not None:
            state["hashes"] = {k: v if isinstance(v, np.ndarray)
                               else faiss.serialize_index_binary(v)
                               for k, v in self.hashes.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import faiss

        if state.get("hashes") is not None:
            state["hashes"] = {k: v if k == "among" else faiss.deserialize_index_binary(v)
                               for k, v in state["hashes"].items()}
        self.__dict__.update(state)


@dataclass
class Found:
    """What one shard found for its rows."""

    rows: np.ndarray  # the shard's rows
    nearest: np.ndarray  # each row's nearest other row by features (-1: none)
    neighbours: np.ndarray  # (m, K_NEIGHBOURS) similarities to the nearest other contents,
    # highest first, NaN where fewer
    pairs: PairMeasures  # the kept candidate pairs, i < j
    reverse: np.ndarray  # (p, 3) float64 (older row, this row, similarity): an older image
    # whose nearest this new one may now be among


def search_shard(shared: tuple[SearchSpace, Collection], rows: np.ndarray) -> Found:
    """Each of ``rows`` against the whole collection (see the module docstring)."""
    space, c = shared
    rows = np.asarray(rows, dtype=np.int64)
    X, codes = space.query(rows)
    sims, nn, exact_rows = space.nearest(rows, X, codes, K_FEATURES + 1)
    q = np.repeat(rows, nn.shape[1])
    valid = (nn >= 0) & (nn != rows[:, None])
    first = valid.argmax(axis=1)
    nearest = np.where(valid.any(axis=1), nn[np.arange(len(rows)), first], -1)
    other = (nn >= 0) & (c.content[np.maximum(nn, 0)] != c.content[rows][:, None])
    # each row's first K_NEIGHBOURS other contents, in the search's order (highest first),
    # their similarity on one scale for all rows (the codes' cosine above EXACT_UP_TO)
    scale = sims.copy()
    recoded = np.flatnonzero(exact_rows & ~space.exact)
    for start in range(0, len(recoded), 1024):
        k = recoded[start:start + 1024]
        scale[k] = np.einsum("ij,ikj->ik", codes[k], space.codes(
            np.maximum(nn[k], 0).ravel()).reshape(len(k), nn.shape[1], -1))
    order = np.argsort(~other, axis=1, kind="stable")[:, :K_NEIGHBOURS]
    neighbours = np.take_along_axis(scale, order, axis=1).astype(np.float32)
    neighbours[~np.take_along_axis(other, order, axis=1)] = np.nan
    if neighbours.shape[1] < K_NEIGHBOURS:
        neighbours = np.pad(neighbours, ((0, 0), (0, K_NEIGHBOURS - neighbours.shape[1])),
                            constant_values=np.nan)
    old = other & ~c.new[np.maximum(nn, 0)]
    reverse = np.stack([nn[old], np.broadcast_to(rows[:, None], nn.shape)[old],
                        scale[old]], 1).astype(np.float64)

    # candidates: the features' neighbours (their cosine known from the search),
    # the hash's neighbours close enough to matter, the turned views', the same contents
    hd, hnn = c.hashes["plain"].search(np.ascontiguousarray(c.bits[rows]),
                                       min(K_HASH + 1, len(c.bits)))
    near = (hd <= max(z[0] for z in ZONES[:-1])) & (hnn >= 0)
    cand = np.concatenate([np.stack([q, nn.ravel()], 1),
                           np.stack([np.repeat(rows, hnn.shape[1])[near.ravel()],
                                     hnn[near]], 1),
                           _turned_candidates(c, rows[c.big[rows]]),
                           c.same_content(rows)])
    ip = np.concatenate([sims.ravel(), np.full(len(cand) - sims.size, np.nan, np.float32)])
    known = np.zeros(len(cand), bool)  # an exact cosine already
    known[:sims.size] = np.repeat(exact_rows, nn.shape[1])
    ok = (cand[:, 1] >= 0) & (cand[:, 0] != cand[:, 1])
    cand, ip, known = cand[ok], ip[ok], known[ok]
    # one entry per pair, the one with the search's cosine first
    _, first = np.unique(np.sort(cand, axis=1), axis=0, return_index=True)
    cand, ip, known = cand[first], ip[first], known[first]
    # query row a (position qa in this shard), other row b
    a, b = cand[:, 0], cand[:, 1]
    qa = np.searchsorted(rows, a)
    todo = np.flatnonzero(np.isnan(ip))
    for start in range(0, len(todo), 8192):  # gathered vectors cost memory: in blocks
        k = todo[start:start + 8192]
        ip[k] = np.einsum("ij,ij->i", codes[qa[k]], space.codes(b[k]))
    ip = np.where(known, ip, space.projected(ip, a, b))  # Wx·Wy: within slack of the cosine
    residual = space.residual
    slack = np.where(known, 0.0, residual[a] * residual[b])
    m = _measure(c, a, b, np.minimum(ip + slack, 1.0).astype(np.float32))
    rank1 = b == nearest[qa]  # a's nearest; whether mutual is known once all shards are in
    sure, zone = decide(m, rank1)
    keep = np.flatnonzero(sure | zone)
    m, qa = m.take(keep), qa[keep]
    # exact cosines of the kept pairs: from the search where it was exact, from the store
    # where the codes leave doubt
    m.cosine = ip[keep].astype(np.float32)
    doubt = np.flatnonzero(slack[keep] > 0)
    m.cosine[doubt] = space.cosines(X[qa[doubt]], m.j[doubt])
    flip = m.i > m.j
    m.i[flip], m.j[flip] = m.j[flip], m.i[flip].copy()
    return Found(rows, nearest, neighbours, m, reverse)


def _measure(c: Collection, a: np.ndarray, b: np.ndarray, cosine: np.ndarray
             ) -> PairMeasures:
    """The hash measures of pairs (rows ``a``, ``b``), with ``cosine`` given."""
    dist = np.unpackbits(c.bits[a] ^ c.bits[b], axis=1).sum(axis=1)
    both = c.big[a] & c.big[b]  # views matter only between pictures with keypoints
    turned = np.full(len(a), 65, np.int64)
    view = np.zeros(len(a), np.int64)
    framed = np.full(len(a), 65, np.int64)
    turned[both], view[both], framed[both] = _turned_distance(c, a[both], b[both])
    return PairMeasures(i=a.copy(), j=b.copy(), cosine=cosine, hash_distance=dist,
                        turned=turned, view=view, framed=framed,
                        same=c.content[a] == c.content[b], small=~(c.big[a] & c.big[b]))


def _turned_candidates(c: Collection, rows: np.ndarray) -> np.ndarray:
    """``(m, 2)`` rows: each of ``rows`` (large pictures) with the large pictures whose hash
    is close to one of its mirrored or turned views' (a copy turned either way: the
    orientations are a group, so the new image's views find the old copy), or to what its
    frame holds, or whose frame holds it, or whose frame holds what its frame holds (a
    product on white shown in a white window)."""
    among = c.hashes["among"]
    if not len(rows) or not len(among) or not c.turns[rows].any():
        return np.zeros((0, 2), np.int64)
    k = min(K_TURNED, len(among))
    out = []

    def search(index: Any, queries: np.ndarray, owner: np.ndarray, limit: int) -> None:
        d, nn = index.search(np.ascontiguousarray(queries), k)
        q = np.repeat(owner, nn.shape[1])
        near = (d.ravel() <= limit) & (nn.ravel() >= 0)
        out.append(np.stack([q[near], among[nn.ravel()[near]]], 1))

    orient = [t for t in range(len(TURNS)) if t != FRAMED]
    search(c.hashes["big"], c.turns[rows][:, orient].reshape(-1, 8),
           np.repeat(rows, len(orient)), TURNED_HASH)
    search(c.hashes["big"], c.turns[rows, FRAMED], rows, FRAMED_HASH)
    search(c.hashes["framed"], c.bits[rows], rows, FRAMED_HASH)
    search(c.hashes["framed"], c.turns[rows, FRAMED], rows, FRAMED_HASH)
    return np.concatenate(out).astype(np.int64)


def _turned_distance(c: Collection, i: np.ndarray, j: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: the least distance between one image's hash and the other's mirrored or
    turned views (either way round) and which view (an index of TURNS); and the least
    distance through a frame's content (either's frame view against the other's hash or
    frame view)."""
    best = np.full(len(i), 65, np.int64)
    view = np.zeros(len(i), np.int64)
    framed = np.full(len(i), 65, np.int64)
    if not len(i):
        return best, view, framed
    orient = np.array([t for t in range(len(TURNS)) if t != FRAMED])
    for start in range(0, len(i), 8192):
        a, b = i[start:start + 8192], j[start:start + 8192]
        d1 = np.unpackbits(c.turns[a] ^ c.bits[b][:, None, :], axis=2).sum(axis=2)
        d2 = np.unpackbits(c.turns[b] ^ c.bits[a][:, None, :], axis=2).sum(axis=2)
        d = np.minimum(d1, d2)
        inside = np.unpackbits(c.turns[a, FRAMED] ^ c.turns[b, FRAMED], axis=1).sum(axis=1)
        framed[start:start + 8192] = np.minimum(d[:, FRAMED], inside)
        best[start:start + 8192] = d[:, orient].min(axis=1)
        view[start:start + 8192] = orient[d[:, orient].argmin(axis=1)]
    return best, view, framed


def hash_index(bits: np.ndarray) -> Any:
    """A faiss index of ``(n, 8)`` uint8 hashes: exact up to :data:`HASH_EXACT_UP_TO`, above
    that an inverted file over the hashes (a copy's hash lies in its original's cell or a
    near one: :data:`HASH_NPROBE` cells are probed), so the search no longer grows as n
    squared."""
    import faiss

    n = len(bits)
    if n <= HASH_EXACT_UP_TO or n < 64:
        index = faiss.IndexBinaryFlat(64)
    else:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, int(4 * np.sqrt(n)))
        index.cp.min_points_per_centroid = 8
        rng = np.random.default_rng(0)
        index.train(np.ascontiguousarray(bits[np.sort(rng.choice(n, min(n, 100_000),
                                                                 replace=False))]))
        index.nprobe = HASH_NPROBE
    index.add(np.ascontiguousarray(bits))
    return index
