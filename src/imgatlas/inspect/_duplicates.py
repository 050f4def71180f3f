"""Near-duplicates: copies of one photograph that differ by resizing, re-compression, a small
crop, a brightness or colour change, a format change.

Two kinds of evidence, each strong where the other is weak (measured on planted copies of
the dev photos, docs/guide/inspect.md):

- the perceptual hash (64 bits of the luminance's low DCT frequencies) survives resizing,
  re-compression, brightness and colour changes, but a crop of a few percent moves it by
  10-20 bits, as far as some pairs of different photos with the same layout;
- the backbone's features survive crops (cosine >= 0.9) but not much else: a half-size
  re-compressed copy can fall to 0.5, while different photos of similar things reach 0.9.

So candidates come from both (each new image's nearest images by hash and by features), a
pair close by both is decided at once, and a pair close by only one is verified
geometrically (:mod:`~imgatlas.inspect._verify`). Exact copies (same bytes) are pairs by
definition.

Mirrored and turned copies keep neither: their hash is as far as a stranger's and the
features of a turned picture fall to 0.4-0.8. Each image's hashes of its mirrored and turned
views (:data:`~imgatlas.inspect._pixels.TURNS`) are searched too: a turned copy's own hash is
as close to one of them as a resized copy's is to its original's, and such a pair is
verified with the mirror image tried as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgatlas.inspect._pixels import TURNS, hash_bits
from imgatlas.inspect._verify import Verifier

# Decided at once: hash this close (of 64 bits) and features this close. Measured on planted
# copies of dev photos (benchmarks/bench_inspect.py): no pair of different photos got here.
HASH_SAME = 4
COS_WITH_HASH = 0.85
# Verified geometrically (or, for pictures too small for keypoints, pixel by pixel): every
# planted copy fell in one of these zones, with room to spare; different photos rarely do.
ZONES = ((12, 0.35),  # hash close, features anywhere: resized, re-compressed, grey
         (26, 0.82),  # hash moved by a crop, features close
         (64, 0.92))  # features very close whatever the hash
SMALL_HASH, SMALL_COS = 6, 0.90  # pictures too small for keypoints: only this close are
# compared pixel by pixel (their hash and features are too coarse to go further)
K_FEATURES = 10  # nearest images by features each new image is compared with
K_HASH = 16  # ... by hash
K_TURNED = 4  # ... by each of its mirrored and turned views' hashes
VERIFY_THREADS = 2
FRAMED = TURNS.index("framed")
# A mirrored or turned view's hash this close to another image's hash: verified. Planted
# mirrored and turned copies came within 8 bits; 12 (the plain hash's zone) tripled the
# pairs verified at 10,000 images and found no more. A frame's content is cut less exactly
# (the frame found, not known): its view gets the plain hash's 12.
TURNED_HASH = 8
FRAMED_HASH = 12
# Two images that are each other's nearest by features are verified from this cosine up: a
# crop to 70 % of the frame, a tilted or a cropped and mirrored copy keeps neither its hash
# nor a close cosine (0.74-0.93 on planted dev copies), but is its original's nearest image.
NEAREST_COS = 0.72
MIRROR_COS = 0.93  # a plain mirror image's features stay this close (0.94-0.98 planted)
# what a new image was compared under: a change of the rules compares everything again
PAIRS_VERSION = 2
K_NEIGHBOURS = 5  # similarities kept per image for the outlier check
EXACT_UP_TO = 50_000  # exact nearest neighbours by features up to this many images
RANDOM_BITS = 32.0  # the hash distance of unrelated pictures (half the bits)


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    similarity: float  # 0..1: the stronger of feature cosine and hash agreement
    cosine: float
    hash_distance: int
    evidence: str

    def row(self) -> tuple[int, int, float, float, int, str]:
        return self.a, self.b, self.similarity, self.cosine, self.hash_distance, self.evidence


@dataclass
class Collection:
    """What inspect compares: every usable image with features and measures."""

    ids: np.ndarray  # (n,) image ids
    X: np.ndarray  # (n, d) unit feature rows
    hashes: np.ndarray  # (n,) signed 64-bit perceptual hashes
    sha: list[str]  # content hash per row
    turns: np.ndarray | None = None  # (n, len(TURNS), 8) uint8: the hashes of TURNS' views

    def __post_init__(self) -> None:
        self.row = {int(i): r for r, i in enumerate(self.ids.tolist())}
        self.bits = hash_bits(self.hashes)
        if self.turns is None:
            self.turns = np.zeros((len(self.ids), len(TURNS), 8), np.uint8)


def similarity(cosine: float, hash_distance: int) -> float:
    """What a person reads as how alike two copies are, 0..1: the stronger of the feature
    cosine and the hash agreement (1 - distance / 32, 0 for unrelated pictures)."""
    return float(np.clip(max(cosine, 1.0 - hash_distance / RANDOM_BITS), 0.0, 1.0))


def find_pairs(c: Collection, new_rows: np.ndarray, verifier: Verifier,
               progress: Callable[[int], None] | None = None
               ) -> tuple[list[Pair], dict[int, np.ndarray]]:
    """The near-duplicate pairs between each new row and the whole collection, and each
    new row's similarities to its nearest other images (cosine, highest first; exact
    copies left out)."""
    feat_sim, feat_nn = _feature_neighbours(c, new_rows, K_FEATURES + 1)
    hash_d, hash_nn = _hash_neighbours(c, new_rows, K_HASH + 1)
    by_sha: dict[str, list[int]] = {}
    for r, s in enumerate(c.sha):
        by_sha.setdefault(s, []).append(r)
    content = np.empty(len(c.sha), dtype=np.int64)  # one number per distinct content
    for n, rows in enumerate(by_sha.values()):
        content[rows] = n

    neighbours: dict[int, np.ndarray] = {}
    exact = []
    for q, r in enumerate(new_rows.tolist()):
        exact += [(r, o) for o in by_sha[c.sha[r]] if o != r]
        others = (feat_nn[q] >= 0) & (content[np.maximum(feat_nn[q], 0)] != content[r])
        neighbours[int(c.ids[r])] = feat_sim[q][others][:K_NEIGHBOURS].astype(np.float32)
    # candidates: the features' neighbours (their cosine known from the search) and the
    # hash's neighbours close enough to matter (their cosine computed for them alone)
    q = np.repeat(new_rows, feat_nn.shape[1])
    by_feat = np.stack([q, feat_nn.ravel(), feat_sim.ravel()], 1)
    nearest = np.full(len(c.ids), -1, np.int64)  # each new row's nearest other row
    for r, o in _nearest_other(feat_nn, new_rows).items():
        nearest[r] = o
    big = ~verifier.small(c.ids)  # pictures with keypoints: the only ones turned views help

    q = np.repeat(new_rows, hash_nn.shape[1])
    near = hash_d.ravel() <= max(z[0] for z in ZONES[:-1])
    by_hash = np.stack([q[near], hash_nn.ravel()[near]], 1)
    rc = np.concatenate([by_feat[:, :2].astype(np.int64), by_hash,
                         _turned_candidates(c, new_rows[big[new_rows]], big),
                         np.array(exact, dtype=np.int64).reshape(-1, 2)])
    known = dict(zip(map(tuple, np.sort(by_feat[:, :2].astype(np.int64), axis=1).tolist()),
                     by_feat[:, 2].tolist(), strict=False))
    rc = rc[(rc[:, 1] >= 0) & (rc[:, 0] != rc[:, 1])]
    rc = np.unique(np.sort(rc, axis=1), axis=0)
    i, j = rc[:, 0], rc[:, 1]
    cos = np.array([known.get((a, b), np.nan) for a, b in rc.tolist()], dtype=np.float32)
    todo = np.flatnonzero(np.isnan(cos))
    for start in range(0, len(todo), 8192):  # gathered rows cost memory: in blocks
        k = todo[start:start + 8192]
        cos[k] = np.einsum("ij,ij->i", c.X[i[k]], c.X[j[k]])
    dist = np.unpackbits(c.bits[i] ^ c.bits[j], axis=1).sum(axis=1)
    # views matter only between pictures with keypoints: measured for those pairs alone
    both = big[i] & big[j]
    turned = np.full(len(i), 65, np.int64)
    view = np.zeros(len(i), np.int64)
    framed_dist = np.full(len(i), 65, np.int64)
    turned[both], view[both], framed_dist[both] = _turned_distance(c, i[both], j[both])
    same = content[i] == content[j]
    sure = same | ((dist <= HASH_SAME) & (cos >= COS_WITH_HASH))
    zone = np.zeros(len(i), dtype=bool)
    for max_dist, min_cos in ZONES:
        zone |= (dist <= max_dist) & (cos >= min_cos)
    small = verifier.small(c.ids[i]) | verifier.small(c.ids[j])
    zone &= ~small | ((dist <= SMALL_HASH) & (cos >= SMALL_COS))
    # a view's hash close: verified, pictures large enough for keypoints only (a small
    # picture's mirror image is too often another picture: shoes all face one way)
    zone |= ((turned <= TURNED_HASH) | (framed_dist <= FRAMED_HASH)) & ~small
    # each other's nearest (an older image's nearest is not known: its side is taken as yes)
    na, nb = nearest[i], nearest[j]
    rank1 = (((na == j) | (na < 0)) & ((nb == i) | (nb < 0)) & ((na >= 0) | (nb >= 0)))
    zone |= rank1 & (cos >= NEAREST_COS) & ~small
    # the second tries (a mirror image, a frame's content) double or triple a pair's
    # keypoint work: made only where such a copy could be. A mirrored copy keeps its
    # features (>= 0.94) or is the nearest image (cropped too: 0.80-0.93), or a mirrored
    # view's hash is the closest; a framed one's frame-view hash is the closest, or it is
    # the nearest image.
    mirrored_views = [k for k, t in enumerate(TURNS) if "mirror" in t or "flipped" in t]
    hinted = turned <= 3 * TURNED_HASH
    mirror_hint = ((cos >= MIRROR_COS) | (rank1 & (cos >= NEAREST_COS))
                   | (hinted & np.isin(view, mirrored_views)))
    frame_hint = rank1 | (framed_dist <= 2 * FRAMED_HASH)
    sure &= ~small | same  # a small picture's hash and features are too coarse alone

    pairs, todo = [], []
    for k in np.flatnonzero(sure | zone):
        a, b = int(c.ids[i[k]]), int(c.ids[j[k]])
        d, cs = int(dist[k]), float(cos[k])
        if same[k]:
            pairs.append(Pair(a, b, 1.0, cs, d, "same bytes"))
        elif sure[k]:
            pairs.append(Pair(a, b, similarity(cs, d), cs, d,
                              f"hash {d} bits apart, features {cs:.2f}"))
        else:
            todo.append((a, b, d, cs, bool(mirror_hint[k]), bool(frame_hint[k])))

    def verify(job: tuple[int, int, int, float, bool, bool]) -> Pair | None:
        a, b, d, cs, mirror, framed = job
        verdict = verifier.match(a, b, mirror=mirror, framed=framed)
        if progress is not None:
            progress(1)
        if verdict is not None and verdict.same_photo:
            return Pair(a, b, similarity(cs, d), cs, d, verdict.evidence)
        return None

    # OpenCV's keypoints and matching release the GIL: two threads verify twice as fast
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        pairs += [p for p in pool.map(verify, todo) if p is not None]
    return pairs, neighbours


def _nearest_other(feat_nn: np.ndarray, rows: np.ndarray) -> dict[int, int]:
    """``{row: its nearest other row by features}`` for each query row."""
    out = {}
    for r, nn in zip(rows.tolist(), feat_nn.tolist(), strict=True):
        other = next((o for o in nn if o >= 0 and o != r), None)
        if other is not None:
            out[r] = other
    return out


def _turned_candidates(c: Collection, rows: np.ndarray, big: np.ndarray) -> np.ndarray:
    """``(m, 2)`` rows: each new row with the images whose hash is close to one of its
    mirrored or turned views' (a copy turned either way: the orientations are a group, so
    the new image's views find the old copy), or to what its frame holds, or whose frame
    holds it, or whose frame holds what its frame holds (a product on white shown in a
    white window). ``big``: the rows large enough for keypoints, the only ones searched."""

    if not len(rows) or c.turns is None or not c.turns.any():
        return np.zeros((0, 2), np.int64)
    among = np.flatnonzero(big)
    k = min(K_TURNED, len(among))
    out = []

    def search(index_rows: np.ndarray, queries: np.ndarray, owner: np.ndarray,
               limit: int) -> None:
        index = hash_index(np.ascontiguousarray(index_rows))
        d, nn = index.search(np.ascontiguousarray(queries), k)
        q = np.repeat(owner, nn.shape[1])
        near = (d.ravel() <= limit) & (nn.ravel() >= 0)
        out.append(np.stack([q[near], among[nn.ravel()[near]]], 1))

    orient = [t for t in range(len(TURNS)) if t != FRAMED]
    search(c.bits[among], c.turns[rows][:, orient].reshape(-1, 8),
           np.repeat(rows, len(orient)), TURNED_HASH)
    framed = c.turns[among, FRAMED]
    search(c.bits[among], c.turns[rows, FRAMED], rows, FRAMED_HASH)
    search(framed, c.bits[rows], rows, FRAMED_HASH)
    search(framed, c.turns[rows, FRAMED], rows, FRAMED_HASH)
    return np.concatenate(out).astype(np.int64)


def _turned_distance(c: Collection, i: np.ndarray, j: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: the least distance between one image's hash and the other's mirrored or
    turned views (either way round) and which view (an index of TURNS); and the least
    distance through a frame's content (either's frame view against the other's hash or
    frame view)."""
    assert c.turns is not None
    best = np.full(len(i), 65, np.int64)
    view = np.zeros(len(i), np.int64)
    framed = np.full(len(i), 65, np.int64)
    if not len(i) or not c.turns.any():
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


def _feature_neighbours(c: Collection, rows: np.ndarray, k: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and row of each query row's ``k`` nearest rows (itself included): exact up to
    EXACT_UP_TO images, above that an inverted-file index (near-duplicates are each other's
    closest neighbours: the approximation loses nothing that matters here)."""
    import faiss

    n, d = c.X.shape
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.index_factory(d, f"IVF{int(4 * np.sqrt(n))},Flat",
                                    faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(c.X[np.sort(rng.choice(n, min(n, 100_000), replace=False))])
        faiss.extract_index_ivf(index).nprobe = 16
    index.add(c.X)
    sims, nn = index.search(np.ascontiguousarray(c.X[rows]), min(k, n))
    return sims, nn


def _hash_neighbours(c: Collection, rows: np.ndarray, k: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distance and row of each query row's ``k`` nearest hashes."""

    index = hash_index(c.bits)
    return index.search(np.ascontiguousarray(c.bits[rows]), min(k, len(c.ids)))


def hash_index(bits: np.ndarray) -> Any:
    """A faiss index of ``(n, 8)`` uint8 hashes: exact up to :data:`EXACT_UP_TO`, above
    that an inverted file over the hashes (a copy's hash lies in its original's cell or a
    near one: 16 cells are probed), so the search no longer grows as n squared."""
    import faiss

    n = len(bits)
    if n <= EXACT_UP_TO:
        index = faiss.IndexBinaryFlat(64)
    else:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, int(4 * np.sqrt(n)))
        rng = np.random.default_rng(0)
        index.train(np.ascontiguousarray(bits[np.sort(rng.choice(n, min(n, 100_000),
                                                                 replace=False))]))
        index.nprobe = 16
    index.add(np.ascontiguousarray(bits))
    return index
