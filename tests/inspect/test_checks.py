"""Each check on synthetic measures: what it flags, what it leaves, relative to the
collection where it says so."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas.errors import ConfigError
from imgatlas.inspect import CHECKS, Measures, run_checks


def measures(n: int = 100, **over: object) -> Measures:
    rng = np.random.default_rng(0)
    stats = {"phash": np.arange(n), "edge_width": rng.uniform(0.9, 1.5, n),
             "mean": np.full(n, 0.5), "p01": np.full(n, 0.05), "p99": np.full(n, 0.95),
             "std": np.full(n, 0.2), "entropy": np.full(n, 5.0), "chroma": np.full(n, 0.3),
             "side": np.full(n, 256.0)}
    m = Measures(ids=np.arange(1, n + 1), width=np.full(n, 400.0), height=np.full(n, 300.0),
                 stats=stats, neighbour_similarity=rng.uniform(0.7, 0.8, n))
    for k, v in over.items():
        if k in stats:
            stats[k] = v
        else:
            setattr(m, k, v)
    return m


def flagged(m: Measures, name: str, **options: object) -> set[int]:
    return {i for i, f, _s, _r in run_checks(m, {name: options} if options else None)
            if f == name}


def test_every_check_has_help_and_takes_its_thresholds():
    assert set(CHECKS.names()) == {"blurry", "dark", "bright", "low_information", "tiny",
                                   "odd_aspect", "grayscale", "outlier"}
    for e in CHECKS:
        assert e.help and all(p.help for p in e.params)
    with pytest.raises(ConfigError, match="blurry does not take 'dark_p99'"):
        run_checks(measures(), {"blurry": {"dark_p99": 0.1}})


def test_blurry_by_width_by_collection_and_by_a_sharper_copy():
    w = np.random.default_rng(1).uniform(0.9, 1.5, 100)
    w[3], w[4], w[5] = 2.6, 1.9, 1.6
    m = measures(edge_width=w, sharper_copy={5: 1.0})
    assert flagged(m, "blurry") == {4, 6}  # id = row + 1: row 3 wide; row 5 softer copy
    assert flagged(m, "blurry", blur_width=3.0) == {6}
    # a collection of soft pictures is judged against its own typical spread
    soft = measures(edge_width=np.r_[np.full(99, 2.2), 4.5])
    assert flagged(soft, "blurry") == {100}
    # no edges (NaN) and too little contrast are not judged
    m = measures(edge_width=np.r_[np.nan, 3.0, np.full(98, 1.1)],
                 p99=np.r_[0.9, 0.1, np.full(98, 0.95)])
    assert flagged(m, "blurry") == set()


def test_exposure_and_uniform_pictures():
    p99 = np.full(100, 0.95)
    p99[0] = 0.12
    p01 = np.full(100, 0.05)
    p01[1] = 0.9
    std = np.full(100, 0.2)
    std[2] = 0.01
    std[0] = 0.01  # dark and uniform: dark says it, not low_information
    m = measures(p99=p99, p01=p01, std=std)
    assert flagged(m, "dark") == {1}
    assert flagged(m, "bright") == {2}
    assert flagged(m, "low_information") == {3}


def test_tiny_and_odd_aspect_are_relative_to_the_collection():
    width, height = np.full(100, 400.0), np.full(100, 300.0)
    width[0], height[0] = 60, 40  # far smaller than the typical 300 px
    width[1], height[1] = 1200, 150  # 8:1 among 4:3 pictures
    m = measures(width=width, height=height)
    assert flagged(m, "tiny") == {1}
    assert flagged(m, "odd_aspect") == {2}
    # a collection of 28 px pictures has nothing tiny in it
    small = measures(width=np.full(100, 28.0), height=np.full(100, 28.0))
    assert flagged(small, "tiny") == set()
    # nor is a panorama odd among panoramas
    wide = measures(width=np.full(100, 1200.0), height=np.full(100, 150.0))
    assert flagged(wide, "odd_aspect") == set()


def test_grayscale_only_among_colour_pictures():
    chroma = np.full(100, 0.3)
    chroma[:3] = 0.01
    assert flagged(measures(chroma=chroma), "grayscale") == {1, 2, 3}
    assert flagged(measures(chroma=np.full(100, 0.01)), "grayscale") == set()


def test_outlier_is_far_from_everyone_else():
    s = np.random.default_rng(2).uniform(0.70, 0.80, 100)
    s[7] = 0.3
    assert flagged(measures(neighbour_similarity=s), "outlier") == {8}
    assert flagged(measures(n=20, neighbour_similarity=s[:20]), "outlier") == set()
