"""Classifier heads, calibration, and the classification metrics (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from imgatlas.classify import LogisticHead, MLPHead, TemperatureScaler
from imgatlas.classify._heads import head_logits, softmax
from imgatlas.evaluate.classification import classification_scores, expected_calibration_error


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(600, n_features=32, centers=4, cluster_std=6.0, random_state=0)
    return X.astype(np.float32), np.array(["a", "b", "c", "d"])[y]


def test_heads_learn_and_save_what_predicting_needs(blobs):
    X, y = blobs
    for head in (LogisticHead(), MLPHead(random_state=0)):
        head.fit(X[:400], y[:400])
        assert (head.predict(X[400:]) == y[400:]).mean() > 0.85
        P = head.predict_proba(X[400:])
        np.testing.assert_allclose(P.sum(1), 1, atol=1e-5)
        kind = "logistic" if isinstance(head, LogisticHead) else "mlp"
        np.testing.assert_allclose(head_logits(kind, head.arrays(), X[400:]),
                                   head.logits(X[400:]), atol=1e-4)


def test_mlp_stops_early_and_keeps_its_best_epoch(blobs):
    X, y = blobs
    noisy = y[:300].copy()  # a quarter of the training labels wrong: it must overfit
    flip = np.random.default_rng(0).choice(300, 75, replace=False)
    noisy[flip] = np.random.default_rng(1).permutation(noisy[flip])
    rows = []
    mlp = MLPHead(patience=3, max_epochs=200, random_state=0).fit(
        X[:300], noisy, X_val=X[300:400], y_val=y[300:400], on_epoch=rows.append)
    assert mlp.n_iter_ < 200 and len(rows) == mlp.n_iter_
    val = [r["val_loss"] for r in mlp.history_]
    assert val[mlp.best_epoch_ - 1] == pytest.approx(min(val), abs=1e-5)
    assert mlp.n_iter_ - mlp.best_epoch_ == 3  # stopped `patience` epochs after the best
    z = mlp.logits(X[300:400])
    p = softmax(z)[np.arange(100), np.searchsorted(mlp.classes_, y[300:400])]
    # the restored weights are those of the best epoch (class weights are ~1 here)
    assert -np.log(p + 1e-12).mean() == pytest.approx(val[mlp.best_epoch_ - 1], rel=2e-2)


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(0, 1, (2000, 3))
    logits[np.arange(2000), y] += 1.0  # right 60 % of the time ...
    logits *= 6  # ... and far too sure of it
    before = expected_calibration_error(softmax(logits), y)
    ts = TemperatureScaler().fit(logits[:1000], y[:1000])
    after = expected_calibration_error(ts.transform(logits[1000:]), y[1000:])
    assert ts.temperature_ > 3 and before > 0.2 and after < 0.05
    assert (ts.transform(logits).argmax(1) == logits.argmax(1)).all()  # never changes a winner


def test_ece_and_scores_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    y = np.array([0, 1, 0, 1])
    # bins: 0.9 (two samples, one right: |0.5 - 0.9| * 2/4), 0.6 (right: |1 - 0.6| * 1/4),
    # 0.8 (right: |1 - 0.8| * 1/4)
    assert expected_calibration_error(probs, y) == pytest.approx(0.2 + 0.1 + 0.05)
    s = classification_scores(y, probs.argmax(1), ["cat", "dog"], probs)
    assert s["accuracy"] == 0.75 and s["confusion"]["counts"] == [[2, 0], [1, 1]]
    assert s["per_class"]["dog"] == {"precision": 1.0, "recall": 0.5,
                                     "f1": pytest.approx(2 / 3), "support": 2}
    assert s["balanced_accuracy"] == pytest.approx(0.75)
    assert s["confusion"]["normalized"] == [[1.0, 0.0], [0.5, 0.5]]
