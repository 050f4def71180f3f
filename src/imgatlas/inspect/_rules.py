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

from dataclasses import dataclass

import numpy as np

from imgatlas.inspect._pixels import TURNS

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


def similarity(cosine: float, hash_distance: int) -> float:
    """What a person reads as how alike two copies are, 0..1: the stronger of the feature
    cosine and the hash agreement (1 - distance / 32, 0 for unrelated pictures)."""
    return float(np.clip(max(cosine, 1.0 - hash_distance / RANDOM_BITS), 0.0, 1.0))


@dataclass
class PairMeasures:
    """What the rules read of candidate pairs, one entry per pair (rows, not image ids)."""

    i: np.ndarray
    j: np.ndarray
    cosine: np.ndarray  # exact, or (for a pair kept only as possible) an upper bound
    hash_distance: np.ndarray
    turned: np.ndarray  # least distance from one's hash to the other's mirrored/turned views
    view: np.ndarray  # which view (an index of TURNS)
    framed: np.ndarray  # least distance through a frame's content
    same: np.ndarray  # same content (bytes)
    small: np.ndarray  # either picture too small for keypoints

    def take(self, keep: np.ndarray) -> PairMeasures:
        return PairMeasures(**{k: v[keep] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, parts: list[PairMeasures]) -> PairMeasures:
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts])
                      for k in cls.__dataclass_fields__})


def decide(m: PairMeasures, rank1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sure, zone)`` per pair: copies at once, and pairs to verify. ``rank1``: the two are
    each other's nearest by features. Given an upper bound of the cosine for ``m.cosine`` (and
    "could be each other's nearest" for ``rank1``), ``sure | zone`` is every pair that could
    be either: what a search shard keeps."""
    dist, cos, small = m.hash_distance, m.cosine, m.small
    sure = m.same | ((dist <= HASH_SAME) & (cos >= COS_WITH_HASH) & ~small)
    zone = np.zeros(len(dist), dtype=bool)
    for max_dist, min_cos in ZONES:
        zone |= (dist <= max_dist) & (cos >= min_cos)
    zone &= ~small | ((dist <= SMALL_HASH) & (cos >= SMALL_COS))
    # a view's hash close: verified, pictures large enough for keypoints only (a small
    # picture's mirror image is too often another picture: shoes all face one way)
    zone |= ((m.turned <= TURNED_HASH) | (m.framed <= FRAMED_HASH)) & ~small
    zone |= rank1 & (cos >= NEAREST_COS) & ~small
    return sure, zone & ~sure


def hints(m: PairMeasures, rank1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs get the second tries (a mirror image, a frame's content), which double or
    triple a pair's keypoint work: only where such a copy could be. A mirrored copy keeps its
    features (>= 0.94) or is the nearest image (cropped too: 0.80-0.93), or a mirrored view's
    hash is the closest; a framed one's frame-view hash is the closest, or it is the nearest
    image."""
    mirrored_views = [k for k, t in enumerate(TURNS) if "mirror" in t or "flipped" in t]
    hinted = m.turned <= 3 * TURNED_HASH
    mirror = ((m.cosine >= MIRROR_COS) | (rank1 & (m.cosine >= NEAREST_COS))
              | (hinted & np.isin(m.view, mirrored_views)))
    framed = rank1 | (m.framed <= 2 * FRAMED_HASH)
    return mirror, framed
