"""Each image's ImageNet-1k class scores, from its stored features through the backbone's
own classifier layer (``logits = features @ W.T + b``: the graph's ``logits`` output is
exactly that layer on the ``features`` it stores, so no image is run through the network
again; existing workspaces get them at once). The top :data:`TOP_K` classes of each image
are kept in the catalog, per feature store.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.store import FeatureStore, Workspace

TOP_K = 10  # classes kept per image: the rest of the probability is negligible for naming
_CHUNK = 8192  # images scored at a time (features read in chunks: bounded memory)


def class_head(store: FeatureStore) -> tuple[np.ndarray, np.ndarray] | None:
    """The ImageNet-1k classifier ``(W, b)`` of the backbone that made ``store``'s features,
    or None (a backbone without one, features normalised or of a view)."""
    record = store.cfg.get("backbone", {})
    extra = record.get("extra") or {}
    if (extra.get("num_classes") != 1000 or store.cfg.get("l2_normalize")
            or store.cfg.get("view")):
        return None
    return _head(record.get("name", ""))


@cache
def _head(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    from imgatlas.backbones import create_backbone
    from imgatlas.errors import ImgatlasError

    try:
        return create_backbone(name).class_head()
    except ImgatlasError:  # a user's file, or weights no longer installed
        return None


def score(X: np.ndarray, head: tuple[np.ndarray, np.ndarray], k: int = TOP_K
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(classes (n, k) int16, probabilities (n, k) float32)``, most likely first."""
    W, b = head
    logits = np.asarray(X, np.float32) @ W.T
    logits += b
    # the top k are picked on the logits (softmax keeps their order); only their
    # probabilities are needed, and the normaliser: a third less work than the full softmax
    top = np.argpartition(logits, -k, axis=1)[:, -k:]
    picked = np.take_along_axis(logits, top, axis=1)
    peak = logits.max(axis=1, keepdims=True)
    logits -= peak
    np.exp(logits, out=logits)
    probs = np.exp(picked - peak) / logits.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1, kind="stable")
    return (np.take_along_axis(top, order, axis=1).astype(np.int16),
            np.take_along_axis(probs, order, axis=1).astype(np.float32))


def ensure_tags(ws: Workspace, store: FeatureStore) -> int:
    """Score and record every embedded image of ``store`` that has no tags yet; returns how
    many (0 when the backbone has no ImageNet classifier)."""
    head = class_head(store)
    if head is None:
        return 0
    todo = np.setdiff1d(store.done_ids(), ws.tag_arrays(store.key)[0])
    for ids, X in store.read_chunks(todo, _CHUNK):
        classes, probs = score(X, head)
        ws.record_tags(store.key, zip(ids.tolist(), classes, probs, strict=True))
    return int(len(todo))


def image_tags(ws: Workspace, store: FeatureStore, ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids ascending, classes (n, k), probabilities (n, k))`` of the store's images (or
    ``ids``): recorded ones read, missing ones scored now (a read-only reader cannot record
    them). A one-line error when the backbone has no ImageNet classes."""
    head = class_head(store)
    if head is None:
        raise ConfigError(f"The features {store.key} come with no ImageNet classes (only "
                          "the EfficientNet-Lite backbones have them), so there are no tags.")
    wanted = store.done_ids() if ids is None else np.unique(np.asarray(ids, dtype=np.int64))
    got = ws.tag_arrays(store.key, wanted.tolist())
    parts = [got] if len(got[0]) else []
    for have, X in store.read_chunks(np.setdiff1d(wanted, got[0]), _CHUNK):
        classes, probs = score(X, head)
        parts.append((have, classes.astype(np.int64), probs))
    if not parts:
        return np.empty(0, np.int64), np.empty((0, TOP_K), np.int64), np.empty((0, TOP_K),
                                                                               np.float32)
    out_ids, classes, probs = (np.concatenate(a) for a in zip(*parts, strict=True))
    order = np.argsort(out_ids, kind="stable")
    return out_ids[order], classes[order], probs[order]


def describe(classes: np.ndarray, probs: np.ndarray, n: int = 3) -> list[dict[str, Any]]:
    """An image's top ``n`` classes as ``[{"tag", "probability"}]``."""
    from imgatlas.names._taxonomy import taxonomy

    tax = taxonomy()
    return [{"tag": tax.display[int(c)], "probability": round(float(p), 4)}
            for c, p in zip(classes[:n], probs[:n], strict=True)]
