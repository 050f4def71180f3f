"""Inspect: near-duplicate groups (hash + features + geometric verification) and per-image
flags (blurry, dark, bright, low information, tiny, odd aspect, grayscale, outlier).

``pixel_stats`` is what the checks need of an image's pixels; the embed stage measures it
while decoding, so inspecting a collection with features costs a fraction of embedding it.
"""

from imgatlas.inspect._checks import CHECKS, Measures, run_checks
from imgatlas.inspect._groups import Group
from imgatlas.inspect._leaks import LEAKS, check_splits, find_leaks, parse_splits
from imgatlas.inspect._pixels import STATS_VERSION, PixelStats, pixel_stats
from imgatlas.inspect._results import (
    DUPLICATES,
    about_image,
    excluded_ids,
    exclusion_names,
    groups,
    inspection,
    latest_inspection,
    parse_exclude,
    would_drop,
)
from imgatlas.inspect._stage import inspect_workspace

__all__ = ["CHECKS", "DUPLICATES", "LEAKS", "STATS_VERSION", "Group", "Measures", "PixelStats",
           "check_splits", "find_leaks", "parse_splits",
           "about_image", "excluded_ids", "exclusion_names", "groups", "inspect_workspace",
           "inspection", "latest_inspection", "parse_exclude", "pixel_stats", "run_checks",
           "would_drop"]
