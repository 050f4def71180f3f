"""The studies' protocol: a stratified, seeded split 70 % train / 30 % test, with 20 % of
train held for validation; or stratified k-fold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from imgatlas.errors import ConfigError


@dataclass
class Split:
    train: np.ndarray  # row indices
    val: np.ndarray
    test: np.ndarray


def check_classes(labels: list[str], min_per_class: int = 2) -> None:
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts)) if counts else "none"
        raise ConfigError(f"Training needs at least 2 classes; the labels hold one ({only!r}).")
    tiny = sorted(c for c, n in counts.items() if n < min_per_class)
    if tiny:
        raise ConfigError(f"Class {tiny[0]!r} has {counts[tiny[0]]} image(s); a class needs at "
                          f"least {min_per_class} to be split into train and test "
                          f"({len(tiny)} class(es) too small).")


def holdout_split(labels: list[str], test_size: float = 0.3, val_size: float = 0.2,
                  seed: int = 0) -> Split:
    """Stratified: every class keeps its share in train, validation and test; a class with
    2 images puts one in train, one in test (and borrows none for validation)."""
    from sklearn.model_selection import train_test_split

    check_classes(labels)
    y = np.asarray(labels)
    idx = np.arange(len(y))
    n_classes = len(set(labels))
    n_test = max(n_classes, int(round(test_size * len(y))))
    try:
        tr, te = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed)
    except ValueError:  # too few images for a stratified split of this size
        tr, te = _per_class_split(y, idx, test_size, seed)
    n_val = int(round(val_size * len(tr)))
    counts = Counter(y[tr])
    if n_val >= n_classes and min(counts.values()) >= 2:
        tr, va = train_test_split(tr, test_size=n_val, stratify=y[tr], random_state=seed + 1)
    else:
        tr, va = _per_class_split(y, tr, val_size, seed + 1, keep_one=True)
    return Split(np.sort(tr), np.sort(va), np.sort(te))


def _per_class_split(y: np.ndarray, idx: np.ndarray, frac: float, seed: int,
                     keep_one: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per class: round(frac * n) rows out (at least one while one stays in)."""
    rng = np.random.default_rng(seed)
    keep, out = [], []
    for c in np.unique(y[idx]):
        rows = rng.permutation(idx[y[idx] == c])
        k = int(round(frac * len(rows)))
        k = min(max(k, 1 if len(rows) > 1 else 0), len(rows) - (1 if keep_one else 0))
        out += rows[:k].tolist()
        keep += rows[k:].tolist()
    return np.array(keep, int), np.array(out, int)


def kfold_splits(labels: list[str], folds: int, val_size: float = 0.2, seed: int = 0
                 ) -> list[Split]:
    """Stratified k-fold; each fold's training part gives up ``val_size`` for validation."""
    from sklearn.model_selection import StratifiedKFold

    check_classes(labels, min_per_class=folds)
    y = np.asarray(labels)
    out = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed)
                                 .split(np.zeros(len(y)), y)):
        tr, va = _per_class_split(y, tr, val_size, seed + 1 + k)
        out.append(Split(np.sort(tr), np.sort(va), np.sort(te)))
    return out
