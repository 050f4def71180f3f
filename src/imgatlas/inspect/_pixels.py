"""What the inspect checks need of an image's pixels, measured once while the pixels are in
memory (the embed stage's decode threads, or inspect itself for images embedded earlier).

Everything is measured on the image as a person would look at it on a screen: the decoded
picture with its longer side brought down to at most :data:`SIDE` pixels (never up: a small
image is judged at its own size).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import cv2
import numpy as np

# Bump when a measure changes: stored rows of an older version are measured again.
# 2: the hashes of the picture mirrored and turned (``turns``)
STATS_VERSION = 2
SIDE = 256  # longest side the measures look at (see docs/guide/inspect.md)
MIN_FOCUS_SIDE = 64  # below this the image is too small to judge its focus
_EDGE_WINDOW = 21  # the neighbourhood whose contrast an edge's slope is compared with
_EDGE_CONTRAST = 0.15  # an edge is a place where that contrast is at least this (0..1)
_EDGE_MIN_PIXELS = 40  # fewer edge pixels in a direction say nothing about it
_SHARPEST = 99.8  # percentile of slope/contrast: the sharpest edges decide
_BINS = 512  # slope/contrast histogram resolution (slopes run 0..~0.5)
_WINDOW = cv2.getStructuringElement(cv2.MORPH_RECT, (_EDGE_WINDOW, _EDGE_WINDOW))
_TAN_22_5 = np.float32(np.tan(np.pi / 8))
_GRADIENT = 0.5 * _EDGE_WINDOW / 2.5  # half a full-window ramp: wider is a gradient


@dataclass(frozen=True)
class PixelStats:
    """One image's measures; luminance values are in 0..1."""

    phash: int  # 64-bit DCT perceptual hash (OpenCV img_hash), as a signed int
    edge_width: float | None  # blur: the spread (sigma, px) of its sharpest edges; None: no
    # edges to judge by, or too small
    mean: float  # mean luminance
    p01: float  # 1st percentile of luminance
    p99: float  # 99th percentile of luminance
    std: float  # luminance standard deviation
    entropy: float  # bits, of the 64-bin luminance histogram
    chroma: float  # 99th percentile of (max - min channel) on a 64-px copy: 0 = grey
    side: int  # longer side of the picture measured
    turns: bytes  # perceptual hashes of the picture's other views (TURNS), 8 bytes each

    def as_row(self) -> tuple:
        return astuple(self)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def pixel_stats(rgb: np.ndarray) -> PixelStats:
    """Measure an ``(H, W, 3)`` uint8 RGB image (any size; larger ones are brought down to
    :data:`SIDE` on the longer side)."""
    rgb = np.ascontiguousarray(rgb)
    gray = screen_gray(rgb)
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    levels = np.arange(256) / 255.0
    mean = float(p @ levels)
    std = float(np.sqrt(max(p @ (levels - mean) ** 2, 0.0)))
    cdf = np.cumsum(p)
    p01 = float(np.searchsorted(cdf, 0.01) / 255.0)
    p99 = float(np.searchsorted(cdf, 0.99) / 255.0)
    coarse = p.reshape(64, 4).sum(1)
    nz = coarse[coarse > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    step = max(1, max(rgb.shape[:2]) // 64)  # a 64-px sample of the pixels is enough
    few = rgb[::step, ::step]
    spread = np.bincount((few.max(axis=2) - few.min(axis=2)).ravel(), minlength=256)
    chroma = float(np.searchsorted(np.cumsum(spread), 0.99 * spread.sum()) / 255.0)
    return PixelStats(phash=_phash(gray), edge_width=edge_width(gray), mean=mean, p01=p01,
                      p99=p99, std=std, entropy=entropy, chroma=chroma, side=max(gray.shape),
                      turns=turned_hashes(gray))


def screen_gray(rgb: np.ndarray) -> np.ndarray:
    """The luminance of an RGB picture with its longer side brought down to :data:`SIDE`:
    an integer box filter, then bilinear (OpenCV's area filter at fractional scales costs
    more than every measure together)."""
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = SIDE / max(h, w)
    if scale >= 1:
        return gray
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    box = max(1, min(w // tw, h // th))
    if box > 1:
        gray = cv2.resize(gray, (w // box, h // box), interpolation=cv2.INTER_AREA)
    return cv2.resize(gray, (tw, th), interpolation=cv2.INTER_LINEAR)


def _phash(gray: np.ndarray) -> int:
    """The 64-bit DCT perceptual hash of OpenCV's img_hash module (it hashes the luminance),
    as a signed int (what SQLite stores); robust to resizing, re-compression and global
    brightness or colour changes."""
    bits = cv2.img_hash.pHash(gray)
    return int.from_bytes(bits.tobytes(), "big", signed=True)


# The picture's other views, as copies are made of it: its seven other orientations (the
# dihedral group of the square: mirrored, turned a quarter either way or a half, and those
# mirrored), and what a frame around it holds (a screenshot, a letterbox, a mount). Named
# for the evidence a pair found through one of them gives.
TURNS = ("mirrored", "turned 90° one way", "turned 180°", "turned 90° the other way",
         "mirrored and turned 90°", "flipped upside down", "mirrored and turned 90° the other way",
         "framed", "turned 45° one way", "turned 45° the other way")


def turned_views(gray: np.ndarray) -> list[np.ndarray]:
    """``gray`` in the views of :data:`TURNS`, in that order (the last: the picture inside
    its frame, or the picture itself when it has none)."""
    m = np.fliplr(gray)
    box = framed_content(gray)
    inside = gray if box is None else gray[box[1]:box[1] + box[3], box[0]:box[0] + box[2]]
    return [m, np.rot90(gray, -1), np.rot90(gray, 2), np.rot90(gray, 1), np.rot90(m, -1),
            np.flipud(gray), np.rot90(m, 1), inside, _turned(gray, 45), _turned(gray, -45)]


def _turned(gray: np.ndarray, degrees: float) -> np.ndarray:
    """``gray`` turned on a canvas grown to hold it, the corners black (as an image editor's
    "rotate" leaves them)."""
    h, w = gray.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    M[0, 2] += nw / 2 - w / 2
    M[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(gray, M, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)


def turned_hashes(gray: np.ndarray) -> bytes:
    """The 64-bit perceptual hash of each of :func:`turned_views`, 8 big-endian bytes each:
    a mirrored, turned or framed copy's own hash is close to one of its original's views'
    (measured while the small grey picture is in memory: these hashes cost less than one
    decode)."""
    return b"".join(cv2.img_hash.pHash(np.ascontiguousarray(v)).tobytes()
                    for v in turned_views(gray))


FRAME_LEVELS = 10  # grey levels from the border's colour that still count as the frame


def framed_content(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of a picture shown inside a plain frame (a screenshot's window, a
    letterbox, a mount), or None: the border is mostly one colour, and the longest run of
    rows that are mostly not that colour, then within them the longest run of such columns,
    cover 10-85 % of the picture (title bars, captions and menus are separate, shorter or
    sparser runs; the picture's own frame-coloured details are too few to break its rows)."""
    h, w = gray.shape
    if min(h, w) < 32:
        return None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.int16)
    bg = int(np.median(border))
    if np.mean(np.abs(border - bg) <= FRAME_LEVELS) < 0.6:
        return None
    mask = np.abs(gray.astype(np.int16) - bg) > FRAME_LEVELS
    y0, y1 = _longest_run(mask.mean(axis=1) >= 0.25)
    if y1 - y0 < 8:
        return None
    x0, x1 = _longest_run(mask[y0:y1].mean(axis=0) >= 0.5)
    if x1 - x0 < 8:
        return None
    top, bottom = _longest_run(mask[y0:y1, x0:x1].mean(axis=1) >= 0.5)
    y0, y1 = y0 + top, y0 + bottom
    share = (x1 - x0) * (y1 - y0) / (h * w)
    return (x0, y0, x1 - x0, y1 - y0) if 0.10 <= share <= 0.85 else None


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """``(start, end)`` of the longest run of True in ``flags`` (end exclusive)."""
    best, start = (0, 0), None
    for k, f in enumerate([*flags.tolist(), False]):
        if f and start is None:
            start = k
        elif not f and start is not None:
            if k - start > best[1] - best[0]:
                best = (start, k)
            start = None
    return best


def turn_bits(turns: list[bytes | None]) -> np.ndarray:
    """Stored ``turns`` -> ``(n, len(TURNS), 8)`` uint8 (zeros where a row has none)."""
    out = np.zeros((len(turns), len(TURNS), 8), np.uint8)
    for r, t in enumerate(turns):
        if t is not None and len(t) == 8 * len(TURNS):
            out[r] = np.frombuffer(t, np.uint8).reshape(len(TURNS), 8)
    return out


def hash_bits(hashes: np.ndarray) -> np.ndarray:
    """Signed 64-bit hashes -> ``(n, 8)`` uint8 rows (faiss binary indexes take these)."""
    return np.asarray(hashes, dtype=">i8").view(np.uint8).reshape(-1, 8)


def edge_width(gray: np.ndarray) -> float | None:
    """How spread out the image's sharpest edges are: the Gaussian sigma (pixels) an edge of
    that slope and contrast would have, in the direction where it is largest.

    At each place where the local contrast (max - min over a 21-px window) is high, slope /
    contrast is 1/(sigma sqrt(2 pi)) for a blurred step; the sharpest 0.2 % of those places
    give the image's sigma. Taking the sharpest edges judges a photo by its subject (a
    shallow depth of field still has sharp edges) and says nothing about a plain sky (no
    edges: None, not blurry). Done per gradient direction (4 bins) and the worst direction
    kept, so motion blur, which smears one direction only, is seen. OpenCV does the
    per-pixel work (this runs in the embed stage's decode threads).
    """
    if min(gray.shape) < MIN_FOCUS_SIDE:
        return None
    width = _edge_width(gray)
    if width is None and min(gray.shape) >= 4 * MIN_FOCUS_SIDE // 2:
        # no edge at this scale: a plain picture, or one so blurred that its edges are
        # wider than the window. A quarter-size copy tells them apart: a blurred photo has
        # edges there; a sky's gradient is as wide as the window, which is no edge.
        h, w = gray.shape
        coarse = _edge_width(cv2.resize(gray, (w // 4, h // 4), interpolation=cv2.INTER_AREA))
        if coarse is not None and coarse < _GRADIENT:
            width = 4 * coarse
    return width


def _edge_width(gray: np.ndarray) -> float | None:
    contrast = cv2.subtract(cv2.dilate(gray, _WINDOW), cv2.erode(gray, _WINDOW))
    edges = cv2.compare(contrast, round(_EDGE_CONTRAST * 255), cv2.CMP_GE)
    if cv2.countNonZero(edges) < _EDGE_MIN_PIXELS:
        return None
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    # slope / contrast in _BINS steps of 1/_BINS (Sobel's 3x3 sums 8 differences)
    slope = cv2.divide(cv2.magnitude(gx, gy), contrast, scale=_BINS / 8.0, dtype=cv2.CV_32F)
    ax, ay = np.abs(gx), np.abs(gy)
    across = cv2.compare(ax * _TAN_22_5, ay, cv2.CMP_GE)  # gradient within 22.5 deg of x
    down = cv2.compare(ay * _TAN_22_5, ax, cv2.CMP_GE)  # ... of y
    rising = cv2.compare(cv2.multiply(gx, gy), 0, cv2.CMP_GT)
    diagonal = cv2.bitwise_and(cv2.bitwise_not(cv2.bitwise_or(across, down)), edges)
    widths = []
    for mask in (cv2.bitwise_and(across, edges), cv2.bitwise_and(down, edges),
                 cv2.bitwise_and(diagonal, rising),
                 cv2.bitwise_and(diagonal, cv2.bitwise_not(rising))):
        hist = cv2.calcHist([slope], [0], mask, [_BINS], [0, _BINS]).ravel()
        total = hist.sum()
        if total >= _EDGE_MIN_PIXELS:
            k = int(np.searchsorted(np.cumsum(hist), _SHARPEST / 100 * total))
            widths.append(1.0 / (np.sqrt(2 * np.pi) * (k + 0.5) / _BINS))
    return float(max(widths)) if widths else None
