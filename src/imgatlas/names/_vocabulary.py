"""Open-vocabulary names for clusters of a CLIP or SigLIP store: ~6,000 concrete WordNet
nouns shipped with imgatlas (``vocabulary.json``, scripts/make_vocabulary.py), embedded once
per model by its text tower and kept beside the model's export; each cluster is named by
the concepts nearest to its members.

The rule: each member's own top :data:`TOP` concepts (cosine of its features to the
concepts' prompts); the suggested name is the concept nearest the cluster's mean direction,
given only when more than :data:`COVERAGE` of the members have it among their own top
concepts (no name rather than a wrong one); the tags are the concepts most members share.
These constants were not tuned: no real CLIP/SigLIP weights can be had where imgatlas is
built (docs/guide/foundation.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._npy import save_npy_atomic
from imgatlas._package_data import package_file

PROMPT = "a photo of a {}."
TOP = 5  # concepts kept per member
COVERAGE = 0.3  # share of members whose own top concepts hold the name
N_TAGS = 5


@cache
def vocabulary() -> tuple[list[str], list[str], str]:
    """``(names, wnids, sha)`` of the shipped vocabulary."""
    path = package_file("names/vocabulary.json")
    raw = path.read_bytes()
    concepts = json.loads(raw)["concepts"]
    return ([c["name"] for c in concepts], [c["wnid"] for c in concepts],
            hashlib.sha256(raw).hexdigest()[:12])


def concept_vectors(tower: Any) -> np.ndarray:
    """``(concepts, dim)`` unit vectors of the vocabulary's prompts by ``tower``, made once
    per model export (float16 beside it: a few MB) and read from there after."""
    names, _, sha = vocabulary()
    path = Path(tower.folder) / f"vocabulary-{sha}.npy"
    try:
        V = np.load(path).astype(np.float32)
        if V.shape[0] == len(names):
            return V
    except (OSError, ValueError, EOFError):  # not made yet, or damaged: made again
        pass
    V = tower.encode([PROMPT.format(n) for n in names], batch_size=256)
    # a read-only model cache: the vectors are still right, just not kept
    with contextlib.suppress(OSError):
        save_npy_atomic(path, V.astype(np.float16))
    return V


def name_clusters(X_by_cluster: dict[int, np.ndarray], tower: Any) -> dict[int, Any]:
    """A :class:`~imgatlas.names._suggest.Suggestion` per cluster from its members' features
    (any scale: normalised here)."""
    from imgatlas.names._suggest import Suggestion

    V = concept_vectors(tower)
    names, wnids, _ = vocabulary()
    out = {}
    for c, X in X_by_cluster.items():
        if not len(X):
            continue
        U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        S = U @ V.T
        top = np.argpartition(-S, TOP, axis=1)[:, :TOP] if S.shape[1] > TOP else \
            np.argsort(-S, axis=1)
        held = Counter(top.ravel().tolist())
        centre = U.mean(axis=0)
        best = int(np.argmax(V @ centre))
        share = held.get(best, 0) / len(U)
        tags = [(names[j], round(n / len(U), 3)) for j, n in held.most_common(N_TAGS)]
        named = share > COVERAGE
        out[c] = Suggestion(names[best] if named else None, wnids[best] if named else None,
                            round(share, 3) if named else 0.0, tags)
    return out
