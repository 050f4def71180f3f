"""The default head is chosen by cross-validation on every label: it never scores below the
plain logistic regression on the same features, out of fold."""

from __future__ import annotations

import numpy as np
import pytest

from imgatlas.classify._select import select_head


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_chosen_head_is_never_below_plain_logistic_regression(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (4, 24))
    y = np.repeat(np.array(["a", "b", "c", "d"]), 30)
    X = (centres[np.searchsorted(["a", "b", "c", "d"], y)]
         + rng.normal(0, 1.6, (120, 24))).astype(np.float32)
    sel = select_head(X, y, ["a", "b", "c", "d"], folds=None, seed=seed)
    plain = sel["summary"]["logistic C=1"]["accuracy"]
    assert sel["metrics"]["estimate"]["accuracy"] >= plain
    assert sel["summary"][sel["chosen"]]["accuracy"] == max(
        v["accuracy"] for k, v in sel["summary"].items() if k.startswith("logistic")) or \
        sel["chosen"] == "mlp"
