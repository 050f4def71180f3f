"""McNemar's test against hand-computed tables and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas.evaluate.mcnemar import accuracy_difference, contingency, mcnemar


def test_table_from_correctness():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 0, 0], bool)
    assert contingency(a, b) == {"a": 1, "b": 2, "c": 1, "d": 1}
    with pytest.raises(ValueError, match="same images"):
        contingency(a, b[:3])


def test_by_hand():
    # b = 10, c = 2: chi2 with continuity = (|10 - 2| - 1)^2 / 12 = 49 / 12
    t = {"a": 50, "b": 10, "c": 2, "d": 8}
    r = mcnemar(t, "chi2")
    assert r["statistic"] == pytest.approx(49 / 12)
    # exact: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    e = mcnemar(t, "exact")
    assert e["p_value"] == pytest.approx(2 * 79 / 4096) and e["method"] == "exact"
    # mid-p: exact - P(X = 2) = 2 * 79 / 4096 - 66 / 4096
    assert mcnemar(t, "midp")["p_value"] == pytest.approx((158 - 66) / 4096)
    assert mcnemar(t)["method"] == "exact"  # b + c = 12 < 25
    assert mcnemar({"a": 1, "b": 20, "c": 10, "d": 1})["method"] == "chi2"
    assert mcnemar({"a": 5, "b": 0, "c": 0, "d": 3}) == {"method": "exact", "statistic": 0.0,
                                                         "p_value": 1.0}
    d = accuracy_difference(t)
    assert d["difference"] == pytest.approx(8 / 70) and d["ci_low"] < d["difference"] < d[
        "ci_high"]


@pytest.mark.parametrize("table", [(10, 5, 2, 20), (100, 30, 12, 40), (5, 7, 7, 1),
                                   (30, 20, 8, 9), (3, 40, 31, 2)])
def test_agrees_with_statsmodels(table):
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    a, b, c, d = table
    t = {"a": a, "b": b, "c": c, "d": d}
    for exact, method in ((True, "exact"), (False, "chi2")):
        ref = sm.mcnemar(np.array([[a, b], [c, d]]), exact=exact, correction=True)
        got = mcnemar(t, method)
        assert got["statistic"] == pytest.approx(ref.statistic)
        assert got["p_value"] == pytest.approx(ref.pvalue)
