"""Text search over the tags: images ranked by the probability of the named class, or of
any class under the named WordNet node ("dog", "vehicle", "flower"), synonyms and plurals
included."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.names._tags import image_tags
from imgatlas.names._taxonomy import taxonomy
from imgatlas.store import FeatureStore, Workspace


def text_search(ws: Workspace, store: FeatureStore, text: str, k: int = 10
                ) -> dict[str, Any]:
    """``{"query", "matched": [{"wnid", "name", "classes"}], "results": [hits]}``; a word
    that names nothing is a one-line error listing close words."""
    tax = taxonomy()
    if not text or not text.strip():
        raise ConfigError("Give a word to search for, such as 'dog' or 'golden retriever'.")
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
