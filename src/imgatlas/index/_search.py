"""Answering queries: by image file (embedded on the fly with the index's backbone), by
vector, or by the id of a catalogued image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._hashing import sha256_file
from imgatlas._text import printable
from imgatlas.errors import ConfigError
from imgatlas.index._codes import CodeIndex
from imgatlas.index._stage import index_store, load_index
from imgatlas.store import FeatureStore, Workspace

RERANK = 3  # with the feature vectors at hand, the codes' top 3k are re-ranked exactly


def store_backbone(store: FeatureStore, cache_dir: Path | None = None) -> Any:
    """The backbone that made a feature store's vectors, checked to still make them."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import store_key
    from imgatlas.errors import UnknownBackbone

    record = store.cfg["backbone"]
    if record.get("derived"):  # tuned on this collection: its graph lives in the workspace
        from imgatlas.backbones import reopen_derived

        d = record["derived"]
        bb = reopen_derived(store.ws.path, create_backbone(d["base"], cache_dir=cache_dir),
                            d["kind"], d["fingerprint"])
    else:
        from imgatlas.backbones.hf import reopen_name

        try:
            bb = create_backbone(reopen_name(record), cache_dir=cache_dir)
        except UnknownBackbone:  # a user's ONNX file: its path is the record's 'weights'
            bb = create_backbone(record["weights"], cache_dir=cache_dir)
    if record.get("precision") == "int8":
        from imgatlas.embed import reopen_int8

        bb = reopen_int8(store.ws.path, bb, record["calibration"], cache_dir)
    view = store.cfg.get("view")  # another picture of each image (lines-canny): same network
    key = store_key(bb, store.cfg.get("l2_normalize", False), str(store.dtype)) + (
        f"-{view}" if view else "")
    if key != store.key:
        raise ConfigError(f"Backbone mismatch: the workspace holds {store.key} features but "
                          f"{record['name']} now gives {key}; embed and index again.")
    return bb


def search_files(ws: Workspace, files: list[str | bytes], *, k: int = 10,
                 codes: str | None = None, cache_dir: Path | None = None,
                 ef_search: int | None = None, nprobe: int | None = None,
                 names: list[str] | None = None) -> list[dict[str, Any]]:
    """Embed query image files with the index's backbone and return their top-k."""
    from imgatlas.embed import Embedder

    ci, ids, meta = load_index(ws, codes, ef_search=ef_search, nprobe=nprobe)
    bb = store_backbone(index_store(ws, meta), cache_dir)
    Q = Embedder(bb).embed_files(files)
    in_index = set(ids.tolist())
    exact = [[i for i in ws.ids_with_sha256(sha256_file(f)) if i in in_index] for f in files]
    return results(ws, ci, ids, Q, k, names or [printable(f) for f in files], exact,
                   raw=(Q, index_store(ws, meta)))


def search_vectors(ws: Workspace, Q: np.ndarray, names: list[str], *, k: int = 10,
                   codes: str | None = None) -> list[dict[str, Any]]:
    """Top-k for feature vectors made by the index's backbone (the web app's path)."""
    ci, ids, meta = load_index(ws, codes)
    return results(ws, ci, ids, Q, k, names, raw=(Q, index_store(ws, meta)))


def search_ids(ws: Workspace, image_ids: list[int], *, k: int = 10, codes: str | None = None,
               ef_search: int | None = None, nprobe: int | None = None
               ) -> list[dict[str, Any]]:
    """Top-k for images already in the workspace, by id (themselves excluded)."""
    ci, ids, meta = load_index(ws, codes, ef_search=ef_search, nprobe=nprobe)
    have, X = index_store(ws, meta).read(np.asarray(image_ids))
    missing = set(image_ids) - set(have.tolist())
    if missing:
        raise ConfigError(f"No embedded image with id {sorted(missing)[0]}.")
    order = [int(np.flatnonzero(have == i)[0]) for i in image_ids]
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    rows = [row_of.get(int(i)) for i in image_ids]
    if None in rows:  # embedded after the index was built: not a member, query by vector
        Q = ci.transform_queries(X[order])
    else:
        Q = ci.member_queries(np.array(rows), X[order])
    res = results(ws, ci, ids, Q, k + 1, [f"id {i}" for i in image_ids], prepared=True,
                  raw=(X[order], index_store(ws, meta)))
    for r, i in zip(res, image_ids, strict=True):
        r["results"] = [h for h in r["results"] if h["id"] != i][:k]
    return res


def results(ws: Workspace, ci: CodeIndex, ids: np.ndarray, Q: np.ndarray, k: int,
            names: list[str], exact: list[list[int]] | None = None, prepared: bool = False,
            raw: tuple[np.ndarray, FeatureStore] | None = None) -> list[dict[str, Any]]:
    """Top-k per query. Catalogued copies of a query file (same bytes) come first, marked
    ``exact`` with the best possible score: a compact code may not rank an image's own copy
    first (``+learn`` codes the query and the collection differently). Each hit has the
    code's raw ``score`` and a ``similarity`` in 0..1 (higher is closer), what faces show.

    With ``raw`` (the queries' feature vectors and the store the index was built from) a
    shortlist of RERANK x k from the codes is re-ranked by the exact cosine of the two
    images' features, and that cosine is the similarity: the order a person reads matches
    the numbers they see, whatever the codes. Without, the code's own estimate of it."""
    exact = exact or [[] for _ in names]
    extra = max((len(e) for e in exact), default=0)
    shortlist = k * RERANK if raw is not None else k
    scores, rows = ci.search(Q, shortlist + extra, prepared=prepared)
    best = 1.0 if ci.metric_is_similarity else 0.0
    found = {int(ids[r]) for row in rows for r in row if r >= 0}
    info = ws.display_and_label(found | {i for e in exact for i in e})

    if raw is None:
        sims = ci.similarities(scores)
    else:
        sims = _cosines(raw, ids, rows)
        order = np.argsort(-np.where(rows >= 0, sims, -1.0), axis=1, kind="stable")
        scores, rows, sims = (np.take_along_axis(a, order, axis=1)
                              for a in (scores, rows, sims))

    def hit(image_id: int, score: float, similarity: float, is_exact: bool
            ) -> dict[str, Any]:
        path, label = info.get(image_id, (None, None))
        return {"id": image_id, "path": path, "label": label, "score": score,
                "similarity": round(similarity, 4), "exact": is_exact}

    out = []
    for name, srow, simrow, irow, same in zip(names, scores, sims, rows, exact, strict=True):
        hits = [hit(i, best, 1.0, True) for i in same]
        for s, sim, r in zip(srow, simrow, irow, strict=True):
            if r >= 0 and int(ids[r]) not in same:
                hits.append(hit(int(ids[r]), float(s), float(sim), False))
        out.append({"query": name, "results": hits[:k]})
    return out


def _cosines(raw: tuple[np.ndarray, FeatureStore], ids: np.ndarray, rows: np.ndarray
             ) -> np.ndarray:
    """Cosine of each query's features with each hit's stored features, clipped to 0..1
    (what a compact code only estimates)."""
    from sklearn.preprocessing import normalize

    queries, store = raw
    found = rows >= 0
    hit_ids = np.unique(ids[rows[found]]) if found.any() else np.array([], np.int64)
    have, V = store.read(hit_ids)
    where = {int(i): r for r, i in enumerate(have.tolist())}
    Q = normalize(np.asarray(queries, dtype=np.float32))
    V = normalize(np.asarray(V, dtype=np.float32)) if len(V) else V
    out = np.zeros(rows.shape, dtype=np.float64)
    for q, row in enumerate(rows):
        for c, r in enumerate(row):
            v = where.get(int(ids[r])) if r >= 0 else None
            if v is not None:
                out[q, c] = float(Q[q] @ V[v])
    return np.clip(out, 0.0, 1.0)
