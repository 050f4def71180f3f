"""Train/val/test splits that do not leak: every near-duplicate group (exact duplicates
included) lands in one split, and each label is split in the shares asked for.

The unit of assignment is a group (an image alone is a group of one). Per label, the shares
are turned into whole counts by the largest remainder (every split gets at least one image
when the label has as many images as there are splits), then the label's groups, largest
first and otherwise in a seeded random order, each go to the split furthest below its count.
A group whose members carry different labels counts for its most common one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from imgatlas.errors import ConfigError

SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


def parse_split(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.7,0.15,0.15"`` -> the shares, checked: two or three, each above 0, summing
    to 1."""
    try:
        shares = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"--split takes two or three shares such as 0.7,0.15,0.15. Got "
                          f"{text!r} instead.") from None
    if len(shares) not in SPLIT_NAMES:
        raise ConfigError(f"--split takes two or three shares (train,test or train,val,test)."
                          f" Got {len(shares)}.")
    if any(not (s > 0) or s != s for s in shares):
        raise ConfigError(f"Every share of --split must be above 0 (a split with nothing in it "
                          f"is no split). Got {text!r}.")
    if abs(sum(shares) - 1) > 1e-6:
        raise ConfigError(f"The shares of --split must sum to 1. Got {sum(shares):g} "
                          f"({text!r}).")
    return shares


def whole_counts(n: int, shares: Sequence[float]) -> np.ndarray:
    """``n`` images cut in ``shares`` as whole numbers (largest remainder), each split at
    least one when ``n`` allows."""
    exact = np.asarray(shares, float) * n
    counts = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    if n >= len(shares):
        for j in np.flatnonzero(counts == 0):
            counts[int(np.argmax(counts))] -= 1
            counts[j] = 1
    return counts


def assign_splits(groups: list[list[int]], labels: dict[int, str], shares: Sequence[float],
                  seed: int = 0) -> tuple[dict[int, int], list[str]]:
    """``{image id: split index}`` for every image of ``groups`` (lists of image ids; every
    image in exactly one), stratified per label of ``labels``; and notes (labels with fewer
    images than splits go to the first split, said once each)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[list[int]]] = {}
    for g in groups:
        label = Counter(labels[i] for i in g).most_common(1)[0][0]
        by_label.setdefault(label, []).append(g)
    out: dict[int, int] = {}
    notes = []
    for label in sorted(by_label):
        units = by_label[label]
        n = sum(len(g) for g in units)
        if n < len(shares):
            notes.append(f"label {label!r} has {n} image(s), fewer than the {len(shares)} "
                         "splits: all in the first")
            out.update((i, 0) for g in units for i in g)
            continue
        target = whole_counts(n, shares)
        have = np.zeros(len(shares), int)
        order = rng.permutation(len(units))
        order = sorted(order, key=lambda u: -len(units[u]))  # stable: the random order stays
        for u in order:
            j = int(np.argmax(target - have))
            have[j] += len(units[u])
            out.update((i, j) for i in units[u])
    return out, notes
