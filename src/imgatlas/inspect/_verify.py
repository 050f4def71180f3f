"""Geometric verification: do two pictures show the same photograph, possibly cropped,
resized, re-exposed, turned or mirrored? ORB keypoints matched both ways, then a rotation +
scale + translation fitted by RANSAC: copies of one photograph share many matches in one
consistent placement; two photographs of similar things share few, scattered ones. ORB's
keypoints turn with the picture, but a mirror image reverses them: when the direct match
fails, the second picture's mirror image is tried (its keypoints detected on the mirrored
pixels). The placement found says what kind of copy it is (mirrored, turned, cropped).

Pictures too small for keypoints (shorter side under 64 px) are compared pixel by pixel
instead: the larger brought to the smaller's size, normalised cross-correlation over shifts
of a pixel (a re-exposed, re-compressed or resized copy stays above 0.98 in 9 of 10 cases;
the closest different Fashion-MNIST pictures reach 0.97).

Only pairs that the hash and the features leave undecided come here, so pictures are decoded
on demand (at :data:`~imgatlas.inspect._pixels.SIDE` pixels) and their keypoints cached.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from imgatlas.decode import DEFAULT_MAX_PIXELS, load_rgb, read_file
from imgatlas.errors import DecodeError
from imgatlas.inspect._pixels import MIN_FOCUS_SIDE, SIDE, framed_content, screen_gray

SAME_PIXELS = 0.98  # small pictures: correlation of a copy with its original
MIN_INLIERS = 15  # matches in one placement that a copy always had on the planted sets
MIN_INLIER_SHARE = 0.35  # ... as a share of the matches: different photos stay below 0.25
SURE_INLIERS = 40  # this many in one placement settle it whatever the share
ORB_FEATURES = 500  # keypoints per picture (matching costs their square)
CROPPED = 0.8  # matched keypoints spanning less of a picture (area share): part of it
SQUARE_TURN = 12.0  # degrees from upright or a quarter turn that a copy's placement keeps
MIN_OVERLAP_PART = 0.2  # area share of each picture the agreeing keypoints span, at least
# an aligned placement (within ALIGN_DEGREES, ALIGN_SCALE of the sizes' ratio, ALIGN_SHIFT of
# the side): this many agreeing keypoints, this share of the overlap's matches
ALIGN_DEGREES, ALIGN_SCALE, ALIGN_SHIFT = 2.0, 0.05, 0.03
ALIGNED_INLIERS, ALIGNED_SHARE = 10, 0.2
_REPROJECTION = 4.0  # px at SIDE: how far a match may land from where the placement puts it


@dataclass(frozen=True)
class Match:
    inliers: int
    matches: int
    mirrored: bool = False
    angle: float = 0.0  # degrees the placement turns the first picture by
    part: float = 1.0  # the smaller share of either picture its matched keypoints span
    # that smaller share over the larger one: a crop spans less of its original than of
    # itself (a plain background without keypoints shrinks both alike)
    part_ratio: float = 1.0
    # matches with both ends where the placement puts the two pictures over each other (a
    # crop's other keypoints have no counterpart: their matches are noise, not evidence)
    overlapping: int | None = None
    framed: bool = False  # found between one picture and what the other's frame holds
    # the placement lays one picture exactly over the other (upright, the scale their sizes
    # give, no shift): the same frame, re-saved, resized or stamped
    aligned: bool = False

    @property
    def same_photo(self) -> bool:
        if self.inliers >= SURE_INLIERS:
            return True
        if (self.aligned and self.overlapping is not None
                and self.inliers >= max(ALIGNED_INLIERS, ALIGNED_SHARE * self.overlapping)):
            # a chance placement between two photos is almost never the identity: a stamp
            # covering much of the picture leaves few keypoints, but all of them in place
            return True
        if self.inliers < MIN_INLIERS:
            return False
        if self.inliers >= MIN_INLIER_SHARE * self.matches:
            return True
        # counted only where the pictures overlap (a crop, a frame, a stamp): then the
        # placement must also be upright or turned by quarters, as copies are (a chance
        # placement between two different photos is turned any way), and the agreeing
        # keypoints span a fair part of both pictures (not one face or one logo)
        if self.overlapping is None:
            return False
        return (self._square_turn and self.part >= MIN_OVERLAP_PART
                and self.inliers >= MIN_INLIER_SHARE * self.overlapping)

    @property
    def _square_turn(self) -> bool:
        return abs(self.angle - round(self.angle / 90.0) * 90) <= SQUARE_TURN

    @property
    def kind(self) -> list[str]:
        """What kind of copy the placement shows: ``mirrored``, ``turned 90°`` (180, 270),
        ``tilted`` (a few degrees), ``cropped`` (one shows a part of the other)."""
        out = ["mirrored"] if self.mirrored else []
        if self.framed:
            out.append("framed")
        turn = round(self.angle / 90.0) * 90 % 360
        if turn and abs(self.angle - round(self.angle / 90.0) * 90) <= 10:
            # a quarter turn one way from one picture is the other way from the other
            out.append("turned 180°" if turn == 180 else "turned 90°")
        elif 2.0 <= abs(((self.angle + 45) % 90) - 45) <= 20:
            out.append("tilted")
        if self.part_ratio < CROPPED and not self.framed:
            out.append("cropped")
        elif not self.framed and self.same_photo and not self._plain:
            # the whole picture lines up, yet much of it does not match: something (text,
            # a logo) covers part of it
            out.append("stamped")
        return out

    @property
    def _plain(self) -> bool:
        return self.inliers >= SURE_INLIERS or self.inliers >= MIN_INLIER_SHARE * self.matches

    @property
    def evidence(self) -> str:
        kind = ", ".join(self.kind)
        return (f"{kind + ': ' if kind else ''}{self.inliers} of {self.matches} keypoints "
                "agree on one placement")


@dataclass(frozen=True)
class PixelMatch:
    correlation: float

    @property
    def same_photo(self) -> bool:
        return self.correlation >= SAME_PIXELS

    @property
    def evidence(self) -> str:
        return f"pixels correlate at {self.correlation:.3f}"


class Verifier:
    """Keypoints (or small pictures' pixels) per image, decoded once, and the verdict per
    pair. ``sizes``: each image's (width, height) from the catalog."""

    def __init__(self, paths: dict[int, bytes], sizes: dict[int, tuple[int, int]],
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.paths = paths
        self.sizes = sizes
        self.max_pixels = max_pixels
        self._pixels: dict[int, np.ndarray | None] = {}
        self._local = threading.local()  # ORB and the matcher, one per verifying thread
        self._keypoints: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._mirrored: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._framed: dict[int, Any] = {}

    def _tools(self) -> tuple[Any, Any]:
        if not hasattr(self._local, "orb"):
            self._local.orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
            self._local.matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        return self._local.orb, self._local.matcher

    def small(self, image_ids: np.ndarray) -> np.ndarray:
        """Which of ``image_ids`` are too small for keypoints."""
        if not hasattr(self, "_large_ids"):  # once: asked of every candidate pair
            self._large_ids = np.array(sorted(i for i, s in self.sizes.items()
                                              if min(s) >= MIN_FOCUS_SIDE), dtype=np.int64)
        # an image of unknown size counts as small
        return ~np.isin(np.asarray(image_ids, dtype=np.int64), self._large_ids)

    def keypoints(self, image_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        if image_id not in self._keypoints:
            gray = self.gray(image_id)
            self._keypoints[image_id] = None if gray is None else self._detect(gray)
        return self._keypoints[image_id]

    def mirrored_keypoints(self, image_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Keypoints of the picture's mirror image, in the mirror image's coordinates."""
        if image_id not in self._mirrored:
            gray = self.gray(image_id)
            self._mirrored[image_id] = (None if gray is None else
                                        self._detect(np.ascontiguousarray(gray[:, ::-1])))
        return self._mirrored[image_id]

    def gray(self, image_id: int) -> np.ndarray | None:
        """The picture's luminance at :data:`SIDE` (None: unreadable)."""
        if image_id not in self._pixels:
            try:
                self._pixels[image_id] = screen_gray(load_rgb(
                    read_file(self.paths[image_id]), (SIDE, SIDE), max_pixels=self.max_pixels))
            except DecodeError:
                self._pixels[image_id] = None
        return self._pixels[image_id]

    def _detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if min(gray.shape) < MIN_FOCUS_SIDE:
            return None
        # equalised: a brightened or darkened copy has the same keypoints as its original
        kp, des = self._tools()[0].detectAndCompute(cv2.equalizeHist(gray), None)
        if des is None or len(kp) < 4:
            return None
        return np.float32([k.pt for k in kp]), des

    def match(self, a: int, b: int, mirror: bool = True, framed: bool = True
              ) -> Match | PixelMatch | None:
        """The verdict on images ``a`` and ``b``; None when either cannot be judged (no
        keypoints, unreadable)."""
        if self.small(np.array([a, b])).any():
            return self._pixel_match(a, b)
        ka, kb = self.keypoints(a), self.keypoints(b)
        if ka is None or kb is None:
            return None
        sa, sb = self.gray(a).shape, self.gray(b).shape  # type: ignore[union-attr]
        direct = self._place(ka, sa, kb, sb, mirrored=False)
        if direct.same_photo:
            return self._framed_or(direct, a, b)
        km = self.mirrored_keypoints(b) if mirror else None
        if km is not None:
            flipped = self._place(ka, sa, km, sb, mirrored=True)
            if flipped.same_photo:
                return flipped
        # a picture inside a frame (a screenshot): what the frame holds, at full size
        tries = ((self.framed_keypoints(a), None), (None, self.framed_keypoints(b))) if framed \
            else ()
        for fa, fb in tries:
            if fa is None and fb is None:
                continue
            inner = self._place(fa[0] if fa else ka, fa[1] if fa else sa,
                                fb[0] if fb else kb, fb[1] if fb else sb, mirrored=False)
            if inner.same_photo:
                return replace(inner, framed=True)
        return direct

    def _framed_or(self, m: Match, a: int, b: int) -> Match:
        """``m``, marked framed when one picture shows the other inside a frame."""
        if m.part_ratio >= CROPPED or m.framed:
            return m
        for i in (a, b):
            gray = self.gray(i)
            if gray is not None and framed_content(gray) is not None:
                return replace(m, framed=True)
        return m

    def framed_keypoints(self, image_id: int
                         ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[int, int]] | None:
        """Keypoints of what a frame around the picture holds, brought up to :data:`SIDE`
        (a screenshot shrinks the photo: its details need the pixels back), and that
        view's shape; None when the picture has no frame."""
        if image_id not in self._framed:
            gray = self.gray(image_id)
            box = None if gray is None else framed_content(gray)
            found = None
            if box is not None:
                x, y, w, h = box
                inner = gray[y:y + h, x:x + w]  # type: ignore[index]
                scale = SIDE / max(w, h)
                if scale > 1:
                    inner = cv2.resize(inner, (round(w * scale), round(h * scale)),
                                       interpolation=cv2.INTER_LINEAR)
                kp = self._detect(np.ascontiguousarray(inner))
                found = None if kp is None else (kp, inner.shape)
            self._framed[image_id] = found
        return self._framed[image_id]

    def _place(self, ka: tuple[np.ndarray, np.ndarray], sa: tuple[int, ...],
               kb: tuple[np.ndarray, np.ndarray], sb: tuple[int, ...],
               mirrored: bool) -> Match:
        pairs = self._tools()[1].match(ka[1], kb[1])
        if len(pairs) < 4:
            return Match(0, len(pairs), mirrored)
        src = ka[0][[m.queryIdx for m in pairs]]
        dst = kb[0][[m.trainIdx for m in pairs]]
        cv2.setRNGSeed(0)  # RANSAC's sampling: the same verdict on every run
        M, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                              ransacReprojThreshold=_REPROJECTION)
        if M is None or mask is None:
            return Match(0, len(pairs), mirrored)
        keep = mask.ravel().astype(bool)
        angle = float(np.degrees(np.arctan2(M[1, 0], M[0, 0])))
        if mirrored:  # the turn as seen from the picture itself, not its mirror image
            angle = -angle
        spans = sorted((_span(src[keep], sa), _span(dst[keep], sb)))
        inside = _inside(src, src[keep]) & _inside(dst, dst[keep])
        return Match(int(keep.sum()), len(pairs), mirrored, angle % 360, spans[0],
                     spans[0] / max(spans[1], 1e-6), int(inside.sum()),
                     aligned=not mirrored and _aligned(M, angle, sa, sb))

    def _pixel_match(self, a: int, b: int) -> PixelMatch | None:
        ga, gb = self.gray(a), self.gray(b)
        if ga is None or gb is None:
            return None
        if ga.size > gb.size:
            ga, gb = gb, ga
        h, w = ga.shape
        if min(h, w) < 4:
            return None
        # the larger one at the smaller's size, a pixel of margin each way to slide over
        big = cv2.copyMakeBorder(cv2.resize(gb, (w, h), interpolation=cv2.INTER_AREA),
                                 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        score = cv2.matchTemplate(big.astype(np.float32), ga.astype(np.float32),
                                  cv2.TM_CCOEFF_NORMED)
        return PixelMatch(float(np.nanmax(score)))


def _span(points: np.ndarray, shape: tuple[int, ...]) -> float:
    """The share of a picture's area that the bounding box of ``points`` covers."""
    if len(points) < 2:
        return 1.0
    h, w = shape[:2]
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    # keypoints stay some pixels inside the border (ORB's patch): that margin is no crop
    margin = 32.0
    return float(min(1.0, (x1 - x0 + margin) / w) * min(1.0, (y1 - y0 + margin) / h))


def _inside(points: np.ndarray, agreeing: np.ndarray, margin: float = 8.0) -> np.ndarray:
    """Which ``points`` lie within the bounding box of the ``agreeing`` ones (plus a margin):
    the part of a picture that the placement lays over the other."""
    if len(agreeing) < 2:
        return np.ones(len(points), dtype=bool)
    lo, hi = agreeing.min(axis=0) - margin, agreeing.max(axis=0) + margin
    return np.all((points >= lo) & (points <= hi), axis=1)


def _aligned(M: np.ndarray, angle: float, sa: tuple[int, ...], sb: tuple[int, ...]) -> bool:
    """Whether the placement ``M`` (from a picture of shape ``sa`` to one of ``sb``) lays
    one whole picture over the other: upright, scaled as their sizes are, not shifted."""
    expected = max(sb[:2]) / max(sa[:2])
    scale = float(np.hypot(M[0, 0], M[1, 0]))
    shift = float(np.hypot(M[0, 2], M[1, 2])) / max(sb[:2])
    turn = abs((angle + 180.0) % 360.0 - 180.0)
    return (turn <= ALIGN_DEGREES and abs(scale / expected - 1.0) <= ALIGN_SCALE
            and shift <= ALIGN_SHIFT)
