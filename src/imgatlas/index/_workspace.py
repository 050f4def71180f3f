"""The index, search and evaluate-retrieval stages."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.evaluate.retrieval import (
    average_precision,
    pr_curve,
    precision_at,
    reciprocal_rank,
)
from imgatlas.index._codes import CodeIndex, parse_spec
from imgatlas.store.features import FeatureStore
from imgatlas.store.workspace import Workspace, io_errors

DEFAULT_CODES = "itq:512+dsh"


def default_codes(n: int, dim: int = 1280) -> str:
    """The default code for ``n`` images of ``dim``-d features: ``itq:512+dsh`` (64 bytes
    per image). Fewer bits below 1,024 images, as ITQ needs more images than bits (twice as
    many to be stable), and never more bits than the features have dimensions."""
    bits = 512 if n >= 1024 else max(8, (n // 2) // 8 * 8)
    bits = min(bits, max(8, dim // 8 * 8))
    return f"itq:{bits}+dsh"


def _slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", spec.lower()).strip("-")


def index_dir(ws: Workspace) -> Path:
    return ws.path / "index"


def build_index(ws: Workspace, store: FeatureStore, codes: str | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Fit a :class:`CodeIndex` on the store's vectors and swap it in atomically.

    Each build goes to a fresh folder ``index/<slug>@<time>``; the symlink
    ``index/<slug>`` is then replaced in one ``rename``, so a reader (or a crash) sees the old
    complete index or the new complete one, never a partial one.
    """
    ids, X = store.read()
    if len(ids) < 2:
        raise ConfigError("Need at least 2 embedded images to build an index.")
    spec = parse_spec(codes or default_codes(len(ids), X.shape[1]))
    run_id = ws.start_run("index", {"codes": str(spec), "features": store.key, "seed": seed})
    t = time.perf_counter()
    ci = CodeIndex(str(spec), random_state=seed).fit(X)
    seconds = time.perf_counter() - t
    root = index_dir(ws)
    root.mkdir(exist_ok=True)
    slug = _slug(str(spec))
    final = root / f"{slug}@{time.time_ns()}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    meta = {"codes": str(spec), "features": store.key, "factory": ci.factory_, "n": int(ci.n_),
            "dim": int(ci.dim_), "build_seconds": round(seconds, 3), "run_id": run_id,
            **ci.bytes_per_image()}
    with io_errors(f"writing index {final}"):
        tmp.mkdir()
        save(ci, ids, meta, tmp)
        os.replace(tmp, final)
        link = root / slug
        tmp_link = root / f".tmp-link-{slug}-{os.getpid()}"
        os.symlink(final.name, tmp_link)
        os.replace(tmp_link, link)
    for old in root.glob(f"{slug}@*"):  # superseded builds
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    ws.finish_run(run_id, meta)
    return {**meta, "path": str(root / slug)}


def save(ci: CodeIndex, ids: np.ndarray, meta: dict[str, Any], folder: Path) -> None:
    ci.save(folder)
    np.save(folder / "ids.npy", ids)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def load_index(ws: Workspace, codes: str | None = None, *, ef_search: int | None = None,
               nprobe: int | None = None) -> tuple[CodeIndex, np.ndarray, dict[str, Any]]:
    """The current index for ``codes`` (or the only/most recent one), its image ids, meta;
    ``ef_search``/``nprobe`` set its search breadth (see :meth:`CodeIndex.set_search`)."""
    root = index_dir(ws)
    links = sorted((p for p in root.glob("*") if p.is_symlink()),
                   key=lambda p: p.resolve().name) if root.exists() else []
    if not links:
        raise WorkspaceError(f"Workspace {ws.path} has no search index yet; run "
                             f"'imgatlas index --workspace {ws.path}' first.")
    if codes is None:
        link = links[-1]
    else:
        link = root / _slug(str(parse_spec(codes)))
        if not link.exists():
            raise WorkspaceError(f"No index with codes {codes!r}; built: "
                                 f"{', '.join(p.name for p in links)}.")
    folder = link.resolve()
    try:
        meta = json.loads((folder / "meta.json").read_text())
        ci = CodeIndex.load(folder, meta["codes"], meta["factory"], meta["n"], meta["dim"])
        ids = np.load(folder / "ids.npy")
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise WorkspaceError(f"Search index {folder} is damaged ({str(e).splitlines()[0]}); "
                             "rebuild it with 'imgatlas index'.") from e
    ci.set_search(ef_search, nprobe)
    return ci, ids, meta


def retrieval_scores(ci: CodeIndex, X: np.ndarray, labels: np.ndarray, *,
                     n_queries: int = 1000, latency_queries: int = 200, seed: int = 0,
                     queries: np.ndarray | None = None, query_labels: np.ndarray | None = None
                     ) -> dict[str, Any]:
    """Retrieval scores on the fitted collection ``X``; relevance = same label.

    Leave-one-out (default): up to ``n_queries`` seeded members each rank the whole
    collection, themselves removed. Held-out (``queries`` given): vectors the index never saw
    rank the whole collection, as a user's new query would. Latency is timed on
    ``latency_queries`` single queries (one vector per search call).
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    counts = {lab: int(c) for lab, c in zip(*np.unique(labels, return_counts=True),
                                            strict=True)}
    if queries is None:
        q = np.sort(rng.choice(n, min(n_queries, n), replace=False))
        QX, qlab = X[q], labels[q]
        _, found = ci.search(ci.member_queries(q, QX), n, prepared=True)
        keep = q[:, None] != found
        ranked = np.stack([row[k][: n - 1] for row, k in zip(found, keep, strict=True)])
        n_rel = np.array([counts[lab] - 1 for lab in qlab])
    else:
        q = np.sort(rng.choice(len(queries), min(n_queries, len(queries)), replace=False))
        QX, qlab = queries[q], query_labels[q]
        _, ranked = ci.search(ci.transform_queries(QX), n, prepared=True)
        n_rel = np.array([counts.get(lab, 0) for lab in qlab])
    # approximate indexes may return fewer than n results, padded with -1: never relevant
    rel = (ranked >= 0) & (labels[np.maximum(ranked, 0)] == qlab[:, None])
    ap = average_precision(rel, n_rel)
    levels, precision = pr_curve(rel, n_rel)
    per_class = {str(lab): float(ap[qlab == lab].mean()) for lab in np.unique(qlab)}
    lat = []
    for i in range(min(latency_queries, len(QX))):
        t = time.perf_counter()
        ci.search(QX[i:i + 1], 10)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "map": float(ap.mean()), "mrr": float(reciprocal_rank(rel).mean()),
        "p_at_10": float(precision_at(rel, 10).mean()),
        "ms_per_query_p50": float(np.percentile(lat, 50)),
        "ms_per_query_p99": float(np.percentile(lat, 99)),
        "pr_curve": {"recall": levels, "precision": precision},
        "per_class_map": per_class, "n_queries": int(len(q)),
    }


# what a retrieval evaluation keeps in its run record (the report's table and PR plot)
RECORDED = ("map", "mrr", "p_at_10", "bytes_per_image", "index_bytes_per_image",
            "ms_per_query_p50", "ms_per_query_p99", "build_seconds", "pr_curve")


def evaluate_retrieval(ws: Workspace, store: FeatureStore, codes: list[str] | None, *,
                       n_queries: int = 1000, seed: int = 0, holdout: float = 0.0
                       ) -> dict[str, Any]:
    """Build each code family on the store's vectors and score it.

    ``holdout=0``: leave-one-out over the whole collection (the codes were fitted on every
    image, the query included, as in the study). ``holdout=0.2``: a seeded 20% of the images
    is kept out of fitting and used as queries against the other 80%: the honest figure for
    queries the index has never seen, and the one that matters for transductive codes
    (+smooth, +learn), whose collection side is fitted on its neighbours.
    """
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--holdout must be in [0, 1). Got {holdout} instead.")
    ids, X = store.read()
    label_of = dict(ws.con.execute("SELECT id, label FROM images WHERE status='ok'"))
    labels = np.array([label_of.get(int(i)) for i in ids], dtype=object)
    if any(lab is None for lab in labels):
        raise ConfigError("Retrieval is scored against labels: scan with "
                          "--labels-from-folders (every image needs one).")
    labels = labels.astype(str)
    fit_rows = np.arange(len(ids))
    query_rows = None
    if holdout > 0:
        perm = np.random.default_rng(np.random.SeedSequence([seed, 0x401D])).permutation(
            len(ids))
        n_out = max(1, int(round(holdout * len(ids))))
        query_rows, fit_rows = np.sort(perm[:n_out]), np.sort(perm[n_out:])
    codes = codes or [default_codes(len(fit_rows), X.shape[1])]
    out = {"features": store.key, "n_images": int(len(ids)), "codes": {},
           "protocol": "leave-one-out" if query_rows is None else
           f"held-out: {len(query_rows)} queries never fitted vs {len(fit_rows)} images"}
    Xf, lf = X[fit_rows], labels[fit_rows]
    extra = {} if query_rows is None else {"queries": X[query_rows],
                                           "query_labels": labels[query_rows]}
    for spec in codes:
        t = time.perf_counter()
        try:
            ci = CodeIndex(spec, random_state=seed).fit(Xf)
        except ConfigError as e:  # e.g. 512-bit codes on 500 images: say so, go on
            if len(codes) == 1:
                raise
            out["codes"][spec] = {"error": str(e)}
            continue
        build = time.perf_counter() - t
        scores = retrieval_scores(ci, Xf, lf, n_queries=n_queries, seed=seed, **extra)
        size = ci.bytes_per_image()  # serialises the index (and pickles a UMAP model): once
        out["codes"][str(ci.spec_)] = {**scores, "build_seconds": round(build, 3),
                                       "factory": ci.factory_,
                                       "bytes_per_image": size["code_bytes"],
                                       "index_bytes_per_image": size["index_bytes"]}
    run_id = ws.start_run("evaluate-retrieval", {"codes": codes, "features": store.key,
                                                 "n_queries": n_queries, "seed": seed,
                                                 "holdout": holdout})
    ws.finish_run(run_id, {k: {m: v[m] for m in RECORDED if m in v}
                           for k, v in out["codes"].items() if "error" not in v})
    out["run_id"] = run_id
    return out


def search_files(ws: Workspace, files: list[str], *, k: int = 10, codes: str | None = None,
                 cache_dir: Path | None = None, ef_search: int | None = None,
                 nprobe: int | None = None) -> list[dict[str, Any]]:
    """Embed query image files with the index's backbone and return their top-k."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import Embedder, store_key

    ci, ids, meta = load_index(ws, codes, ef_search=ef_search, nprobe=nprobe)
    store = FeatureStore.get(ws, meta["features"])
    if store is None:
        raise WorkspaceError(f"The index was built on features {meta['features']}, which are "
                             "no longer in the workspace; rebuild it.")
    record = store.cfg["backbone"]
    try:
        bb = create_backbone(record["name"], cache_dir=cache_dir)
    except KeyError:  # a user's ONNX file: its path is the record's 'weights'
        bb = create_backbone(record["weights"], cache_dir=cache_dir)
    key = store_key(bb, store.cfg.get("l2_normalize", False), str(store.dtype))
    if key != store.key:
        raise ConfigError(f"Backbone mismatch: the index holds {store.key} features but "
                          f"{record['name']} now gives {key}; rebuild the index.")
    Q = Embedder(bb).embed_files(files)
    in_index = set(ids.tolist())
    exact = [[i for i in _copies_in_catalog(ws, f) if i in in_index] for f in files]
    return _results(ws, ci, ids, Q, k, [os.fsdecode(f) for f in files], exact)


def _copies_in_catalog(ws: Workspace, path: str | bytes) -> list[int]:
    """Catalogued images with the same bytes as ``path`` (sha256)."""
    from imgatlas.scan._probe import _hash

    digest, _ = _hash(os.fsencode(path), os.path.getsize(path))
    return [r[0] for r in ws.con.execute(
        "SELECT id FROM images WHERE sha256=? AND status='ok' ORDER BY id", (digest,))]


def search_ids(ws: Workspace, image_ids: list[int], *, k: int = 10, codes: str | None = None,
               ef_search: int | None = None, nprobe: int | None = None
               ) -> list[dict[str, Any]]:
    """Top-k for images already in the workspace, by id (themselves excluded)."""
    ci, ids, meta = load_index(ws, codes, ef_search=ef_search, nprobe=nprobe)
    store = FeatureStore.get(ws, meta["features"])
    have, X = store.read(np.asarray(image_ids))
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
    res = _results(ws, ci, ids, Q, k + 1, [f"id {i}" for i in image_ids], prepared=True)
    for r, i in zip(res, image_ids, strict=True):
        r["results"] = [h for h in r["results"] if h["id"] != i][:k]
    return res


def _results(ws: Workspace, ci: CodeIndex, ids: np.ndarray, Q: np.ndarray, k: int,
             names: list[str], exact: list[list[int]] | None = None, prepared: bool = False
             ) -> list[dict[str, Any]]:
    """Top-k per query. Catalogued copies of a query file (same bytes) come first, marked
    ``exact`` with the best possible score: a compact code may not rank an image's own copy
    first (``+learn`` codes the query and the collection differently)."""
    exact = exact or [[] for _ in names]
    extra = max((len(e) for e in exact), default=0)
    scores, rows = ci.search(Q, k + extra, prepared=prepared)
    best = 1.0 if ci.metric_is_similarity else 0.0
    info = {r[0]: (r[1], r[2]) for r in ws.con.execute("SELECT id, display, label FROM images")}

    def hit(image_id: int, score: float, is_exact: bool) -> dict[str, Any]:
        path, label = info.get(image_id, (None, None))
        return {"id": image_id, "path": path, "label": label, "score": score,
                "exact": is_exact}

    out = []
    for name, srow, irow, same in zip(names, scores, rows, exact, strict=True):
        hits = [hit(i, best, True) for i in same]
        for s, r in zip(srow, irow, strict=True):
            if r >= 0 and int(ids[r]) not in same:
                hits.append(hit(int(ids[r]), float(s), False))
        out.append({"query": name, "results": hits[:k]})
    return out
