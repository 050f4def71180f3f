"""McNemar's test: do two classifiers scored on the same images differ in accuracy?"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EXACT_BELOW = 25  # b + c under this: exact binomial test (the chi-square is poor there)


def contingency(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, int]:
    """The 2x2 table of two paired correctness vectors: ``a`` both right, ``b`` A right and
    B wrong, ``c`` A wrong and B right, ``d`` both wrong."""
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ca.shape != cb.shape:
        raise ValueError("the two models must be scored on the same images")
    return {"a": int((ca & cb).sum()), "b": int((ca & ~cb).sum()),
            "c": int((~ca & cb).sum()), "d": int((~ca & ~cb).sum())}


def mcnemar(table: dict[str, int], method: str = "auto") -> dict[str, Any]:
    """McNemar's test on a 2x2 table (keys ``a``, ``b``, ``c``, ``d``; only the discordant
    cells ``b`` and ``c`` matter).

    ``method``: ``exact`` (two-sided binomial test of b against Binomial(b + c, 1/2)),
    ``midp`` (the exact p minus the probability of the observed table: less conservative),
    ``chi2`` (chi-square with Edwards' continuity correction, (|b - c| - 1)^2 / (b + c)), or
    ``auto``: exact when b + c < 25, chi2 otherwise. With b + c = 0 the models never disagree
    and p = 1.
    """
    from scipy import stats

    b, c = int(table["b"]), int(table["c"])
    n = b + c
    if method == "auto":
        method = "exact" if n < EXACT_BELOW else "chi2"
    if method not in ("exact", "midp", "chi2"):
        raise ValueError(f"method must be auto, exact, midp or chi2. Got {method!r} instead.")
    if n == 0:
        return {"method": method, "statistic": 0.0, "p_value": 1.0}
    if method == "chi2":
        stat = (abs(b - c) - 1) ** 2 / n
        return {"method": method, "statistic": float(stat),
                "p_value": float(stats.chi2.sf(stat, 1))}
    k = min(b, c)
    two_sided = 2.0 * stats.binom.cdf(k, n, 0.5)
    # mid-p: Fagerland, Lydersen & Laake (2013), 2 [P(X <= k) - P(X = k) / 2]
    p = two_sided - stats.binom.pmf(k, n, 0.5) if method == "midp" else two_sided
    return {"method": method, "statistic": float(k), "p_value": float(min(1.0, p))}


def accuracy_difference(table: dict[str, int], confidence: float = 0.95) -> dict[str, float]:
    """Accuracy of A minus accuracy of B on the same n images, (b - c) / n, with a Wald
    interval for paired proportions (Agresti, Categorical Data Analysis, 10.1)."""
    from scipy import stats

    n = sum(int(table[k]) for k in "abcd")
    b, c = int(table["b"]), int(table["c"])
    diff = (b - c) / n
    var = ((b + c) / n - diff ** 2) / n
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * math.sqrt(max(var, 0.0))
    return {"difference": diff, "ci_low": diff - half, "ci_high": diff + half,
            "confidence": confidence}
