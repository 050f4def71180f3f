"""Geometric verification: do two pictures show the same photograph, possibly cropped,
resized or re-exposed? ORB keypoints matched both ways, then a rotation + scale +
translation fitted by RANSAC: copies of one photograph share many matches in one consistent
placement; two photographs of similar things share few, scattered ones.

Pictures too small for keypoints (shorter side under 64 px) are compared pixel by pixel
instead: the larger brought to the smaller's size, normalised cross-correlation over shifts
of a pixel (a re-exposed, re-compressed or resized copy stays above 0.98 in 9 of 10 cases;
the closest different Fashion-MNIST pictures reach 0.97).

Only pairs that the hash and the features leave undecided come here, so pictures are decoded
on demand (at :data:`~imgatlas.inspect._pixels.SIDE` pixels) and their keypoints cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imgatlas.decode import DEFAULT_MAX_PIXELS, load_rgb, read_file
from imgatlas.errors import DecodeError
from imgatlas.inspect._pixels import MIN_FOCUS_SIDE, SIDE, screen_gray

SAME_PIXELS = 0.98  # small pictures: correlation of a copy with its original
MIN_INLIERS = 15  # matches in one placement that a copy always had on the planted sets
MIN_INLIER_SHARE = 0.35  # ... as a share of the matches: different photos stay below 0.25
SURE_INLIERS = 40  # this many in one placement settle it whatever the share
_REPROJECTION = 4.0  # px at SIDE: how far a match may land from where the placement puts it


@dataclass(frozen=True)
class Match:
    inliers: int
    matches: int

    @property
    def same_photo(self) -> bool:
        return self.inliers >= SURE_INLIERS or (
            self.inliers >= MIN_INLIERS and self.inliers >= MIN_INLIER_SHARE * self.matches)

    @property
    def evidence(self) -> str:
        return f"{self.inliers} of {self.matches} keypoints agree on one placement"


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
        self._orb = cv2.ORB_create(nfeatures=500)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._keypoints: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def small(self, image_ids: np.ndarray) -> np.ndarray:
        """Which of ``image_ids`` are too small for keypoints."""
        return np.array([min(self.sizes.get(int(i), (0, 0))) < MIN_FOCUS_SIDE
                         for i in image_ids], dtype=bool)

    def keypoints(self, image_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        if image_id not in self._keypoints:
            gray = self.gray(image_id)
            self._keypoints[image_id] = None if gray is None else self._detect(gray)
        return self._keypoints[image_id]

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
        kp, des = self._orb.detectAndCompute(cv2.equalizeHist(gray), None)
        if des is None or len(kp) < 4:
            return None
        return np.float32([k.pt for k in kp]), des

    def match(self, a: int, b: int) -> Match | PixelMatch | None:
        """The verdict on images ``a`` and ``b``; None when either cannot be judged (no
        keypoints, unreadable)."""
        if self.small(np.array([a, b])).any():
            return self._pixel_match(a, b)
        ka, kb = self.keypoints(a), self.keypoints(b)
        if ka is None or kb is None:
            return None
        pairs = self._matcher.match(ka[1], kb[1])
        if len(pairs) < 4:
            return Match(0, len(pairs))
        src = ka[0][[m.queryIdx for m in pairs]]
        dst = kb[0][[m.trainIdx for m in pairs]]
        cv2.setRNGSeed(0)  # RANSAC's sampling: the same verdict on every run
        _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                              ransacReprojThreshold=_REPROJECTION)
        return Match(int(mask.sum()) if mask is not None else 0, len(pairs))


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
