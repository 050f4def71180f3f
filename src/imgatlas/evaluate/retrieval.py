"""Retrieval metrics over ranked lists (pure functions, no I/O).

``relevant`` is a boolean matrix ``(n_queries, n_ranked)``: whether the item at each rank
is relevant to the query (same label). ``n_relevant`` is how many relevant items exist per
query in the whole collection (needed for recall and for AP when the ranking is cut).
"""

from __future__ import annotations

import numpy as np


def average_precision(relevant: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP per query: mean of precision@r over the ranks r of the relevant items, divided by
    all relevant items (those the ranking missed count as zero precision)."""
    rel = np.asarray(relevant, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    prec_at_hits = np.where(rel, hits / ranks, 0.0).sum(axis=1)
    n = np.asarray(n_relevant, dtype=np.float64)
    return np.divide(prec_at_hits, n, out=np.zeros_like(prec_at_hits), where=n > 0)


def reciprocal_rank(relevant: np.ndarray) -> np.ndarray:
    rel = np.asarray(relevant, dtype=bool)
    first = rel.argmax(axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def precision_at(relevant: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(relevant, dtype=bool)[:, :k].mean(axis=1)


def pr_curve(relevant: np.ndarray, n_relevant: np.ndarray, points: int = 11
             ) -> tuple[list[float], list[float]]:
    """Interpolated precision at ``points`` recall levels (0, 0.1, ..., 1), mean over
    queries: the classic 11-point curve."""
    rel = np.asarray(relevant, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    rec = hits / np.maximum(np.asarray(n_relevant, dtype=np.float64)[:, None], 1)
    # interpolated precision: max precision at any rank with recall >= level
    interp_prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]
    levels = np.linspace(0, 1, points)
    out = []
    for lv in levels:
        ok = rec >= lv - 1e-12
        first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
        vals = np.where(first >= 0, interp_prec[np.arange(len(rel)), np.maximum(first, 0)], 0.0)
        out.append(float(vals.mean()))
    return [float(v) for v in levels], out
