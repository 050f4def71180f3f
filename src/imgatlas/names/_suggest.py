"""A cluster's suggested name and tags, from its members' ImageNet class scores lifted
through WordNet: a beagle and a foxhound are both hounds, both dogs.

The rule (its threshold measured on the dev sets, ``benchmarks/bench_names.py``): a member
*falls under* a WordNet node when at least 30 % of its probability lies on classes under
that node; the suggested name is the most specific node (the deepest; ties: the one more
members fall under) that more than :data:`COVERAGE` of the members fall under, leaving out
nodes too general or too learned to name anything (:meth:`Taxonomy.nameable`). A cluster
with no such node gets no name, only its tags: no name rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import sparse

from imgatlas.names._taxonomy import Taxonomy, taxonomy

COVERAGE = 0.5  # share of the members that must fall under the name
MEMBER_MASS = 0.3  # share of a member's probability that must lie under a node
N_TAGS = 5


@dataclass(frozen=True)
class Suggestion:
    name: str | None  # the suggested name, or None
    wnid: str | None
    coverage: float  # share of members under it (0 when no name)
    tags: list[tuple[str, float]]  # the most frequent classes: (name, share of members)


@cache
def _under_matrix() -> tuple[sparse.csr_matrix, list[str]]:
    """(1000 classes x nodes) indicator: class i is under node j."""
    tax = taxonomy()
    wnids = sorted(tax.under)
    col = {w: j for j, w in enumerate(wnids)}
    rows, cols = [], []
    for i, anc in enumerate(tax.ancestors):
        for a in anc:
            rows.append(i)
            cols.append(col[a])
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                          shape=(len(tax.classes), len(wnids)))
    return m, wnids


def node_mass(classes: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``(n, nodes)``: each image's probability lying under each node (from its top
    classes), and the nodes' WordNet ids."""
    under, wnids = _under_matrix()
    n, k = classes.shape
    a = sparse.csr_matrix((probs.ravel().astype(np.float32),
                           (np.repeat(np.arange(n), k), classes.ravel())),
                          shape=(n, under.shape[0]))
    return (a @ under).toarray(), wnids


def suggest(classes: np.ndarray, probs: np.ndarray, coverage: float = COVERAGE,
            member_mass: float = MEMBER_MASS, tax: Taxonomy | None = None) -> Suggestion:
    """The name and tags of a group of images (their top classes and probabilities)."""
    tax = tax or taxonomy()
    if not len(classes):
        return Suggestion(None, None, 0.0, [])
    mass, wnids = node_mass(classes, probs)
    share = (mass >= member_mass).mean(axis=0)
    best = None
    for j in np.flatnonzero(share > coverage):
        w = wnids[j]
        if not tax.nameable(w):
            continue
        key = (tax.nodes[w].depth, share[j])
        if best is None or key > best[0]:
            best = (key, w, float(share[j]))
    top1, counts = np.unique(classes[:, 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:N_TAGS]
    tags = [(tax.display[int(top1[o])], round(float(counts[o] / len(classes)), 4))
            for o in order]
    if best is None:
        return Suggestion(None, None, 0.0, tags)
    _, w, cov = best
    return Suggestion(tax.name_of(w), w, round(cov, 4), tags)
