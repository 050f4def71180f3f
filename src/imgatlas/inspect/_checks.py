"""The per-image checks of the inspect stage, picked by name from a registry that carries
each one's thresholds and help (``imgatlas algorithms`` lists them; ``imgatlas inspect``
takes each threshold as an option).

Each check sees every image's measures at once (:class:`Measures`) because several judge an
image against its collection: "tiny" and "odd aspect" next to the collection's typical
size, "grayscale" only in a collection of colour pictures, "outlier" by how far an image's
nearest neighbours are compared with everybody else's. Each returns ``(row, score,
reason)`` for the images it flags; the thresholds' defaults come from the planted sets of
``benchmarks/bench_inspect.py`` (docs/guide/inspect.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgatlas.registry import Param, Registry

CHECKS = Registry("inspect check")
Flagged = list[tuple[int, float, str]]


@dataclass
class Measures:
    """Every usable image's measures, row-aligned (NaN where unknown)."""

    ids: np.ndarray
    width: np.ndarray
    height: np.ndarray
    stats: dict[str, np.ndarray]  # pixel_stats columns
    neighbour_similarity: np.ndarray  # mean cosine to the nearest other images
    sharper_copy: dict[int, float] = field(default_factory=dict)  # row -> the edge width of
    # its sharpest near-duplicate measured at the same size

    def __len__(self) -> int:
        return len(self.ids)


def check(name: str, help: str, params: tuple[Param, ...] = ()
          ) -> Callable[[Callable[..., Flagged]], Callable[..., Flagged]]:
    return CHECKS.register(name, help=help, params=params)


def run_checks(m: Measures, options: dict[str, dict[str, Any]] | None = None
               ) -> list[tuple[int, str, float, str]]:
    """Every check over ``m``: ``(image id, flag, score, reason)``. ``options``: per check,
    thresholds other than the defaults."""
    out = []
    for entry in CHECKS:
        given = (options or {}).get(entry.name, {})
        kw = {p.name: p.default for p in entry.params} | entry.options(given)
        out += [(int(m.ids[r]), entry.name, float(s), why) for r, s, why in entry.factory(m, **kw)]
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


@check("blurry", "out of focus or motion-blurred: its sharpest edges are spread wide for "
                 "its size (a plain picture with no edges is not judged)",
       (Param("blur_width", float, 2.0, "edge spread (sigma, px at 256 px) from which a "
                                        "picture is out of focus", low=0, low_open=True),
        Param("blur_relative", float, 1.75, "... or this many times the collection's typical "
                                           "spread, whichever is larger", low=0, low_open=True),
        Param("blur_copy_ratio", float, 1.25, "a near-duplicate of the same size this many "
                                              "times sharper makes a softer copy blurry ...",
              low=1),
        Param("blur_copy_width", float, 1.35, "... when its own spread is at least this", low=0)))
def blurry(m: Measures, blur_width: float, blur_relative: float, blur_copy_ratio: float,
           blur_copy_width: float) -> Flagged:
    w = m.stats["edge_width"]
    known = w[~np.isnan(w)]
    if not len(known):
        return []
    typical = float(np.median(known))
    limit = max(blur_width, blur_relative * typical)
    # too little contrast to judge focus (nearly black or white): dark / bright say more
    judged = ~np.isnan(w) & (m.stats["p99"] - m.stats["p01"] >= 0.2)
    out = []
    for r in np.flatnonzero(judged):
        other = m.sharper_copy.get(int(r))
        if w[r] >= limit:
            out.append((int(r), float(w[r]), f"edges spread over {w[r]:.1f} px (in-focus "
                                             f"pictures here: {typical:.1f} px)"))
        elif other is not None and w[r] >= blur_copy_ratio * other and w[r] >= blur_copy_width:
            out.append((int(r), float(w[r]), f"a near-duplicate is {w[r] / other:.1f}x "
                                             f"sharper ({other:.1f} vs {w[r]:.1f} px)"))
    return out


@check("dark", "nearly black: almost every pixel is dark",
       (Param("dark_p99", float, 0.25, "99 % of the pixels darker than this (0..1)", low=0,
              high=1),))
def dark(m: Measures, dark_p99: float) -> Flagged:
    p99 = m.stats["p99"]
    return [(int(r), float(1 - p99[r]),
             f"99 % of its pixels are below {_pct(p99[r])} brightness")
            for r in np.flatnonzero(p99 <= dark_p99)]


@check("bright", "washed out, nearly white: almost every pixel is bright",
       (Param("bright_p01", float, 0.85, "99 % of the pixels brighter than this (0..1)",
              low=0, high=1),))
def bright(m: Measures, bright_p01: float) -> Flagged:
    p01 = m.stats["p01"]
    return [(int(r), float(p01[r]), f"99 % of its pixels are above {_pct(p01[r])} brightness")
            for r in np.flatnonzero(p01 >= bright_p01)]


@check("low_information", "nearly uniform: almost nothing to see (neither dark nor bright)",
       (Param("min_std", float, 0.03, "luminance standard deviation below which a picture "
                                      "is uniform (0..1)", low=0, high=1),))
def low_information(m: Measures, min_std: float) -> Flagged:
    # not the histogram's entropy: an apple on a black cloth has little, and is a photo
    s = m.stats
    uniform = s["std"] < min_std
    plain = uniform & (s["p99"] > 0.25) & (s["p01"] < 0.85)  # dark / bright say it better
    return [(int(r), float(1 - s["std"][r]),
             f"nearly uniform (luminance spread {_pct(s['std'][r])}, "
             f"{s['entropy'][r]:.1f} bits)") for r in np.flatnonzero(plain)]


@check("tiny", "far smaller than the collection's typical picture",
       (Param("tiny_share", float, 0.25, "shorter side below this share of the typical "
                                         "shorter side", low=0, high=1),
        Param("tiny_px", int, 16, "... or below this many pixels", low=0)))
def tiny(m: Measures, tiny_share: float, tiny_px: int) -> Flagged:
    short = np.minimum(m.width, m.height).astype(np.float64)
    typical = float(np.median(short)) if len(short) else 0.0
    limit = max(tiny_px, tiny_share * typical)
    return [(int(r), float(1 - short[r] / max(typical, 1)),
             f"{int(m.width[r])} x {int(m.height[r])} px (typical here: shorter side "
             f"{typical:.0f} px)") for r in np.flatnonzero(short < limit)]


@check("odd_aspect", "much wider or taller than the collection's typical picture",
       (Param("aspect_ratio", float, 2.5, "how many times more elongated than typical", low=1),))
def odd_aspect(m: Measures, aspect_ratio: float) -> Flagged:
    log_aspect = np.log(np.maximum(m.width, 1) / np.maximum(m.height, 1))
    typical = float(np.median(log_aspect)) if len(log_aspect) else 0.0
    off = np.abs(log_aspect - typical)
    return [(int(r), float(np.exp(off[r])),
             f"{int(m.width[r])} x {int(m.height[r])} px, {np.exp(off[r]):.1f}x more "
             f"elongated than the typical {np.exp(typical):.2f}:1")
            for r in np.flatnonzero(off >= np.log(aspect_ratio))]


@check("grayscale", "no colour, in a collection of colour pictures",
       (Param("max_chroma", float, 0.03, "colour spread (max - min channel, 0..1) below "
                                         "which a picture is grey", low=0, high=1),
        Param("grey_majority", float, 0.5, "not flagged when this share of the collection "
                                           "is grey (it is a grey collection)", low=0, high=1)))
def grayscale(m: Measures, max_chroma: float, grey_majority: float) -> Flagged:
    grey = m.stats["chroma"] <= max_chroma
    if not len(grey) or grey.mean() >= grey_majority:
        return []
    grey &= m.stats["p99"] > 0.25  # a nearly black picture shows no colour: dark says it
    return [(int(r), float(1 - m.stats["chroma"][r]),
             f"no colour (channel spread {_pct(m.stats['chroma'][r])}) among "
             f"{_pct(1 - grey.mean())} colour pictures") for r in np.flatnonzero(grey)]


@check("outlier", "far from everything else in feature space: its nearest images are much "
                  "less alike than anyone else's",
       (Param("outlier_spread", float, 5.0, "how many robust spreads (MAD) below the "
                                            "typical nearest-neighbour similarity", low=0,
              low_open=True),
        Param("outlier_min_images", int, 50, "no outliers in collections smaller than this",
              low=2)))
def outlier(m: Measures, outlier_spread: float, outlier_min_images: int) -> Flagged:
    s = m.neighbour_similarity
    ok = ~np.isnan(s)
    if ok.sum() < outlier_min_images:
        return []
    typical = float(np.median(s[ok]))
    spread = float(np.median(np.abs(s[ok] - typical))) * 1.4826 or 1e-6
    z = (typical - s) / spread
    return [(int(r), float(z[r]),
             f"its nearest images are {s[r]:.2f} alike (typical here: {typical:.2f})")
            for r in np.flatnonzero(ok & (z >= outlier_spread))]
