"""Which way of spreading labels a collection gets: the one its own labels favour.

Every method of :data:`~imgatlas.classify._propagate.PROPAGATORS` spreads from all the
labels but one held-out fold and is scored on that fold (stratified k-fold over the classes
that have at least two labels, k = min(5, the smallest of them); labels of the other classes
stay in every training part). The best out-of-fold accuracy wins, ties going to the earlier
of :data:`ORDER`; its accuracy is the estimate a person sees before trusting the spread
labels. No constant here was fitted to a data set: what decides is the labels at hand.

Until two classes have two labels each nothing can be held out, and the collection's own
structure is the only evidence: cluster-then-label (``clusters``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.classify._propagate import PROPAGATORS, LabelSpace, propagate_proba

ORDER = defaults.PROPAGATION_METHODS[1:]  # ties go to the first of these
UNTIL_HELD_OUT = "clusters"  # the method while nothing can be held out
FOLDS = 5


def choose(space: LabelSpace, rows: np.ndarray, labels: np.ndarray, *,
           methods: tuple[str, ...] | None = None, seed: int = 0) -> dict[str, Any]:
    """The propagation method for labelled ``rows`` (of ``space``) with ``labels`` (any
    comparable values): ``{"method", "estimate", "estimates", "reason"}``. ``estimate``
    (accuracy, standard error, folds, labels) is the chosen method's, ``estimates`` every
    method's; both None/empty while nothing can be held out."""
    methods = tuple(methods or ORDER)
    for m in methods:
        PROPAGATORS[m]  # an unknown name: one line naming the choices
    rows = np.asarray(rows, np.int64)
    classes, yi = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(yi, minlength=len(classes))
    usable = np.flatnonzero(counts >= 2)
    if len(usable) < 2:
        if len(methods) == 1:
            return {"method": methods[0], "estimate": None, "estimates": {},
                    "reason": "as asked"}
        return {"method": UNTIL_HELD_OUT, "estimate": None, "estimates": {},
                "reason": "fewer than two classes have two labels: nothing can be held out "
                          "to compare the methods, so the clusters of the collection decide"}
    scored = _cross_validate(space, rows, yi, len(classes), usable, methods, seed)
    best = max(methods, key=lambda m: (scored[m]["accuracy"], -methods.index(m)))
    reason = "as asked" if len(methods) == 1 else (
        f"the best of {len(methods)} methods on the labels themselves, each fold held out "
        f"in turn ({scored[best]['folds']} folds)")
    return {"method": best, "estimate": scored[best], "estimates": scored, "reason": reason}


def _cross_validate(space: LabelSpace, rows: np.ndarray, yi: np.ndarray, n_classes: int,
                    usable: np.ndarray, methods: tuple[str, ...], seed: int
                    ) -> dict[str, dict[str, Any]]:
    from sklearn.model_selection import StratifiedKFold

    held = np.flatnonzero(np.isin(yi, usable))
    always = np.flatnonzero(~np.isin(yi, usable))  # one label of its class: always a seed
    k = int(min(FOLDS, np.bincount(yi[held])[usable].min()))
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(held, yi[held]))
    out = {}
    for m in methods:
        right = 0
        for tr, te in splits:
            train = np.concatenate([held[tr], always])
            P = propagate_proba(m, space, rows[train], yi[train], n_classes)
            right += int((P[rows[held[te]]].argmax(1) == yi[held[te]]).sum())
        acc = right / len(held)
        out[m] = {"accuracy": round(acc, 4), "labels": int(len(held)), "folds": k,
                  "standard_error": round(float(np.sqrt(acc * (1 - acc) / len(held))), 4)}
    return out


def estimate_accuracy(X: np.ndarray, labelled: np.ndarray, labels: np.ndarray,
                      seed: int = 0, space: LabelSpace | None = None
                      ) -> dict[str, Any] | None:
    """How right spreading these labels would make the collection, estimated on the labels
    themselves (:func:`choose`): the chosen method's out-of-fold accuracy, with ``method``
    and every method's ``estimates``. None until two classes have two labels each."""
    space = space if space is not None else LabelSpace(np.asarray(X), seed)
    choice = choose(space, labelled, labels, seed=seed)
    if choice["estimate"] is None:
        return None
    return {**choice["estimate"], "method": choice["method"],
            "estimates": choice["estimates"]}


def label_curve(X: np.ndarray, y: np.ndarray, n_classes: int,
                per_class: tuple[int, ...] = (1, 2, 5, 10, 20), repeats: int = 3,
                seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy of every method as a function of labels per class: seeds drawn from the
    labelled images ``X``/``y``, scored on the rest of them (held back)."""
    rng = np.random.default_rng(seed)
    space = LabelSpace(np.asarray(X), seed)
    out = []
    counts = np.bincount(y, minlength=n_classes)
    for m in per_class:
        if m >= counts[counts > 0].min():
            continue
        acc: dict[str, list[float]] = {name: [] for name in ORDER}
        for _ in range(repeats):
            seeds = np.concatenate([rng.choice(np.flatnonzero(y == c), m, replace=False)
                                    for c in range(n_classes) if counts[c]])
            rest = np.setdiff1d(np.arange(len(y)), seeds)
            for name in ORDER:
                P = propagate_proba(name, space, seeds, y[seeds], n_classes)
                acc[name].append(float((P[rest].argmax(1) == y[rest]).mean()))
        row: dict[str, Any] = {"labels_per_class": m, "repeats": repeats}
        for key, v in acc.items():
            row[key], row[f"{key}_sd"] = float(np.mean(v)), float(np.std(v))
        out.append(row)
    return out
