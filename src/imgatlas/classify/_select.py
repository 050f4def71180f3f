"""Every label counts: the head's hyperparameters and temperature are chosen by stratified
cross-validation over all the labelled images, then the chosen head is fitted again on all
of them. The out-of-fold predictions give the accuracy a person sees before trusting the
model (and its standard error), the calibration figures, the confusion matrix and the
confident mistakes: each image predicted by a head that never saw it.

Why: with a few hundred labels, a 70/30 split with a validation part trained the head on
56 % of them; refitting on all is worth more than any tuning (a plain logistic regression on
all the dev images beat the split-trained head by 2 points on held-out photos).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

from imgatlas._progress import progress_bar
from imgatlas.classify._heads import LogisticHead, MLPHead, TemperatureScaler, softmax
from imgatlas.classify._split import check_classes
from imgatlas.evaluate.classification import (
    classification_scores,
    expected_calibration_error,
)

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)  # logistic regression's inverse regularisation
FOLDS = 5


def candidates(seed: int) -> dict[str, Any]:
    """The heads cross-validation chooses from, by name."""
    out: dict[str, Any] = {f"logistic C={c:g}": LogisticHead(C=c) for c in C_GRID}
    out["mlp"] = MLPHead(random_state=seed)
    return out


def select_head(X: np.ndarray, y: np.ndarray, classes: list[str], folds: int | None,
                seed: int, progress: bool = False) -> dict[str, Any]:
    """Choose a head and its temperature by cross-validation, refit it on everything.

    Returns ``{"chosen", "final", "temperature", "oof_probs", "metrics", "summary",
    "folds", "history", "similarity_cut"}``; ``metrics`` are the chosen head's out-of-fold
    scores (``estimate``: its accuracy and standard error). With fewer than two labels of
    some class nothing can be held out: the default head is fitted on all, unestimated.
    """
    check_classes(list(y), 1)
    yi = np.array([classes.index(c) for c in y])
    smallest = int(np.bincount(yi, minlength=len(classes)).min())
    k = int(min(folds or FOLDS, smallest))
    cands = candidates(seed)
    if k < 2:
        final = LogisticHead().fit(X, y)
        return {"chosen": "logistic C=3", "final": final, "temperature": 1.0,
                "oof_probs": None, "metrics": None, "summary": {}, "folds": 0,
                "history": [], "similarity_cut": None}
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, yi))
    oof = {name: np.zeros((len(y), len(classes)), np.float32) for name in cands}
    nearest = np.zeros(len(y))
    Xn = normalize(X)
    bar = progress_bar(total=k * len(cands), desc="train: cross-validation", unit="fit",
                       enable=progress)
    for tr, te in splits:
        for name, est in cands.items():
            h = _fresh(est).fit(X[tr], y[tr])
            oof[name][np.ix_(te, [classes.index(c) for c in h.classes_])] = h.logits(X[te])
            missing = sorted(set(range(len(classes))) - {classes.index(c) for c in h.classes_})
            if missing:  # a fold without some class: it can never be predicted there
                oof[name][np.ix_(te, missing)] = -1e4
            bar.update(1)
        nearest[te] = (Xn[te] @ Xn[tr].T).max(1)
    bar.close()
    acc = {name: float((z.argmax(1) == yi).mean()) for name, z in oof.items()}
    best_lr = max((n for n in acc if n.startswith("logistic")), key=lambda n: acc[n])
    p = acc[best_lr]
    se = float(np.sqrt(max(p * (1 - p), 1e-12) / len(y)))
    # the MLP has more to fit: it must beat the best logistic by a standard error
    chosen = "mlp" if acc["mlp"] > p + se else best_lr
    z = oof[chosen]
    temperature, ece_cal = _cross_fitted_temperature(z, yi, splits)
    probs = softmax(z / temperature)
    metrics = classification_scores(yi, z.argmax(1), classes, probs)
    metrics.update({
        "ece": ece_cal, "ece_uncalibrated": expected_calibration_error(softmax(z), yi),
        "estimate": {"accuracy": round(acc[chosen], 4),
                     "standard_error": round(float(np.sqrt(
                         max(acc[chosen] * (1 - acc[chosen]), 1e-12) / len(y))), 4),
                     "folds": k, "images": int(len(y))},
        "val_accuracy": acc[chosen], "estimate_kind": "cross-validated"})
    final = _fresh(cands[chosen]).fit(X, y)
    summary = {name: {"val_accuracy": a, "accuracy": a,
                      "balanced_accuracy": classification_scores(
                          yi, oof[name].argmax(1), classes)["balanced_accuracy"],
                      "ece": expected_calibration_error(softmax(oof[name]), yi),
                      "ece_uncalibrated": expected_calibration_error(softmax(oof[name]), yi)}
               for name, a in acc.items()}
    history = [{"epoch": h["epoch"], **{k2: round(v, 5) for k2, v in h.items() if k2 != "epoch"}}
               for h in getattr(final, "history_", [])]
    return {"chosen": chosen, "final": final, "temperature": temperature,
            "oof_probs": probs, "metrics": metrics, "summary": summary, "folds": k,
            "history": history,
            "similarity_cut": float(np.quantile(nearest, 0.01))}


def _fresh(est: Any) -> Any:
    from sklearn.base import clone

    return clone(est)


def _cross_fitted_temperature(z: np.ndarray, yi: np.ndarray,
                              splits: list[tuple[np.ndarray, np.ndarray]]
                              ) -> tuple[float, float]:
    """The temperature fitted on all out-of-fold logits, and the calibration error measured
    honestly: each fold's probabilities scaled by a temperature fitted on the other folds."""
    cal = np.zeros_like(z)
    for _tr, te in splits:
        rest = np.setdiff1d(np.arange(len(yi)), te)
        t = TemperatureScaler().fit(z[rest], yi[rest]).temperature_
        cal[te] = softmax(z[te] / t)
    temperature = TemperatureScaler().fit(z, yi).temperature_
    return float(temperature), expected_calibration_error(cal, yi)
