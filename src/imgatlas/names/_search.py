"""Text search. On features of a backbone with a text tower (CLIP, SigLIP): any words,
embedded by the tower and compared with every image's features. On the default's features:
images ranked by the probability of the named ImageNet class, or of any class under the
named WordNet node ("dog", "vehicle", "flower"), synonyms and plurals included."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.errors import ConfigError, NoTextTower
from imgatlas.names._tags import class_head, image_tags
from imgatlas.names._taxonomy import taxonomy
from imgatlas.store import FeatureStore, Workspace


def text_search(ws: Workspace, store: FeatureStore, text: str, k: int = 10
                ) -> dict[str, Any]:
    """``{"query", "matched": [{"wnid", "name", "classes"}], "results": [hits]}``; a word
    that names nothing is a one-line error listing close words. On a text tower's features
    ``matched`` is ``[{"name": text, "by": backbone}]`` and any words are searched."""
    if not text or not text.strip():
        raise ConfigError("Give a word to search for, such as 'dog' or 'golden retriever'.")
    record = store.cfg.get("backbone", {})
    if (record.get("extra") or {}).get("text_tower"):
        return tower_search(ws, store, text, k)
    if class_head(store) is None:
        raise NoTextTower(
            f"The features {store.key} come from {record.get('name', store.backbone)}, which "
            "has no text tower and no ImageNet classes; search by words needs a CLIP or "
            "SigLIP backbone (embed --backbone clip-vit-b32) or the default backbone.")
    tax = taxonomy()
    nodes = tax.lookup(text)
    nodes = [w for w in nodes if w in tax.under]
    if not nodes:
        close = tax.close_words(text)
        hint = f"; close: {', '.join(close)}" if close else ""
        raise ConfigError(f"No ImageNet class or WordNet group is called {text.strip()!r}"
                          f"{hint}.")
    wanted = np.zeros(len(tax.classes), dtype=bool)
    for w in nodes:
        wanted[tax.under[w]] = True
    ids, classes, probs = image_tags(ws, store)
    scores = (probs * wanted[classes]).sum(axis=1) if len(ids) else np.zeros(0)
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[scores[order] > 0]
    info = ws.display_and_label(ids[order].tolist())
    results = []
    for r in order.tolist():
        i = int(ids[r])
        path, label = info.get(i, (None, None))
        top = [tax.display[int(c)] for c in classes[r][:3]]
        results.append({"id": i, "path": path, "label": label,
                        "score": round(float(scores[r]), 4),
                        "similarity": round(float(min(1.0, scores[r])), 4), "tags": top,
                        "exact": False})
    return {"query": text.strip(),
            "matched": [{"wnid": w, "name": tax.name_of(w),
                         "classes": int(len(tax.under[w]))} for w in nodes],
            "results": results}


def tower_search(ws: Workspace, store: FeatureStore, text: str, k: int = 10,
                 cache_dir: Any = None) -> dict[str, Any]:
    """Images nearest to ``text`` embedded by the store's text tower (prompt templates
    averaged), by cosine over every stored vector, read in chunks. ``score`` is the model's
    own: SigLIP's sigmoid probability, CLIP's cosine."""
    from imgatlas.index import store_backbone

    bb = store_backbone(store, cache_dir)
    tower = bb.text_tower()
    if tower is None:  # pragma: no cover - the record said it had one
        raise NoTextTower(f"{bb.name} has no text tower.")
    q = tower.embed_queries([text.strip()])[0]
    best_ids, best_cos = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for ids, X in store.read_chunks():
        X = np.asarray(X, np.float32)
        cos = (X @ q) / np.maximum(np.linalg.norm(X, axis=1), 1e-12)
        best_ids = np.concatenate([best_ids, ids])
        best_cos = np.concatenate([best_cos, cos.astype(np.float32)])
        if len(best_ids) > 4 * k:
            keep = np.argpartition(-best_cos, k - 1)[:k] if k < len(best_cos) else slice(None)
            best_ids, best_cos = best_ids[keep], best_cos[keep]
    order = np.lexsort((best_ids, -best_cos))[:k]
    scores = tower.scores(best_cos[order])
    info = ws.display_and_label(best_ids[order].tolist())
    results = []
    for r, sc in zip(order.tolist(), scores.tolist(), strict=True):
        i = int(best_ids[r])
        path, label = info.get(i, (None, None))
        cos = float(best_cos[r])
        # similarity: 0..1 as every face shows it (a text-image cosine below 0 is no match)
        results.append({"id": i, "path": path, "label": label, "score": round(float(sc), 4),
                        "cosine": round(cos, 4), "similarity": round(min(max(cos, 0.0), 1.0), 4),
                        "tags": [], "exact": False})
    return {"query": text.strip(), "matched": [{"name": text.strip(), "by": bb.name,
                                                "scores": "sigmoid" if tower.sigmoid
                                                else "cosine"}],
            "results": results}
