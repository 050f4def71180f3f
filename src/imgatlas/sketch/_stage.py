"""The sketch stages: embed the photos' line maps, index them, search by drawing, score a
folder of sketches, train an adapter from sketch-photo pairs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._text import printable
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.sketch import _features as F
from imgatlas.store import FeatureStore, Workspace

SKETCH_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def _base_backbone(ws: Workspace, features: str | None) -> str:
    """The backbone the workspace's photos were embedded with (its name), for the lines."""
    store = ws.pick_store(features)
    if store.cfg.get("view"):
        raise ConfigError(f"Feature store {store.key} is already a line-map store; give the "
                          "photo features with --features.")
    return store.cfg["backbone"]["name"]


def line_store(ws: Workspace, *, detector: str = F.DETECTOR, block: int | None = F.BLOCK,
               features: str | None = None) -> FeatureStore | None:
    """The line-map store for this detector and layer, when it exists."""
    name = F.line_backbone_name(_base_backbone(ws, features), block)
    view = F.view_name(detector)
    for s in reversed(ws.feature_stores()):
        if s.cfg.get("view") == view and s.cfg["backbone"]["name"] == name:
            return s
    return None


def embed_lines(ws: Workspace, *, detector: str = F.DETECTOR, block: int | None = F.BLOCK,
                features: str | None = None, cache_dir: Path | None = None,
                progress: bool = False, batch_size: int = defaults.BATCH_SIZE
                ) -> dict[str, Any]:
    """Embed every usable photo's line map (resumable, as embed is) into its own store."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import embed_workspace

    name = F.line_backbone_name(_base_backbone(ws, features), block)
    bb = create_backbone(name, cache_dir=cache_dir)
    return embed_workspace(ws, bb, batch_size=batch_size, progress=progress,
                           view=F.view_name(detector),
                           decoder=F.photo_decoder(detector, bb.cfg.input_size[0]))


def _adapter_or_none(adapter: str | os.PathLike[str] | None, backbone: str) -> Any:
    if adapter is None:
        return None
    from imgatlas.sketch._adapter import load_adapter

    a = load_adapter(adapter)
    if a.meta.get("backbone") != backbone:
        raise ConfigError(f"Adapter {printable(adapter)} was trained on {a.meta.get('backbone')}"
                          f" features; the workspace's photos have {backbone} features.")
    return a


class _FusedStore:
    """What the sketch index is built on: for every photo with both, its photo-domain
    features (through the adapter's photo side) beside its line-map features."""

    def __init__(self, photos: FeatureStore, lines: FeatureStore, adapter: Any) -> None:
        self.photos, self.lines, self.adapter = photos, lines, adapter
        self.key = lines.key
        self.cfg = lines.cfg

    def read(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        pid, P = self.photos.read(ids)
        lid, L = self.lines.read(pid)
        keep = np.isin(pid, lid)
        P = P[keep]
        if self.adapter is not None:
            P = self.adapter.photos(P)
        return lid, F.fuse(P, L)


def build_sketch_index(ws: Workspace, *, codes: str | None = None,
                       adapter: str | os.PathLike[str] | None = None,
                       detector: str = F.DETECTOR, block: int | None = F.BLOCK,
                       features: str | None = None, cache_dir: Path | None = None,
                       seed: int = defaults.SEED, progress: bool = False) -> dict[str, Any]:
    """Embed the line maps still missing, then index every photo's photo-domain features
    (through the adapter's photo side when one is given) beside its line-map features:
    ``imgatlas index --sketch``."""
    from imgatlas.index._stage import build_index

    photos = ws.pick_store(features)
    base = _base_backbone(ws, features)
    a = _adapter_or_none(adapter, base)
    emb = embed_lines(ws, detector=detector, block=block, features=features,
                      cache_dir=cache_dir, progress=progress)
    fused = _FusedStore(photos, ws.feature_store(emb["store"]), a)
    n = len(fused.lines.done_ids())
    extra = {"adapter": a.identity if a else None,
             "adapter_path": str(Path(adapter).resolve()) if a else None,
             "photo_store": photos.key, "backbone": base}
    res = build_index(ws, fused, codes or ("float" if n < 20_000 else None), seed,
                      domain="sketch", extra_meta=extra)
    return {**res, "embedded": emb["embedded"], "line_store": fused.key}


def _query_side(ws: Workspace, meta: dict[str, Any], adapter: Any, cache_dir: Path | None
                ) -> tuple[Any, Any]:
    """The embedder that makes the query's features (the photos' backbone) and the adapter,
    checked against what the index was built with."""
    from imgatlas.embed import Embedder
    from imgatlas.index._search import store_backbone
    from imgatlas.index._stage import index_store

    a = _adapter_or_none(adapter, meta.get("backbone", ""))
    if (a.identity if a else None) != meta.get("adapter"):
        have = meta.get("adapter_path") or "no adapter"
        raise ConfigError(f"The sketch index was built with {have}; build it again with "
                          "'imgatlas index --sketch" + (f" --adapter {printable(adapter)}'"
                                                         if adapter else "'") + ".")
    index_store(ws, meta)  # the line store must still exist
    photos = ws.feature_store(meta.get("photo_store", ""))
    if photos is None:
        raise ConfigError("The photo features the sketch index was built on are gone; "
                          "build it again with 'imgatlas index --sketch'.")
    return Embedder(store_backbone(photos, cache_dir)), a


def _fused_queries(emb: Any, a: Any, drawings: list[Any], tta: bool) -> np.ndarray:
    S = _sketch_queries(emb, drawings, tta)
    return F.fuse(a.sketches(S) if a is not None else S, S)


def search_sketch(ws: Workspace, drawings: list[bytes | str | os.PathLike[str]], *,
                  names: list[str] | None = None, k: int = 10, codes: str | None = None,
                  adapter: str | os.PathLike[str] | None = None,
                  cache_dir: Path | None = None, tta: bool = False) -> list[dict[str, Any]]:
    """Photos for each drawing (a file path or PNG bytes, e.g. from a canvas)."""
    from imgatlas.index._search import results
    from imgatlas.index._stage import load_index

    if k < 1:
        raise ConfigError(f"--k must be at least 1. Got {k} instead.")
    ci, ids, meta = load_index(ws, codes, domain="sketch")
    emb, a = _query_side(ws, meta, adapter, cache_dir)
    Q = _fused_queries(emb, a, drawings, tta)
    names = names or [printable(d) if not isinstance(d, bytes) else "drawing"
                      for d in drawings]
    return results(ws, ci, ids, Q, k, names)


def _sketch_queries(emb: Any, drawings: list[Any], tta: bool) -> np.ndarray:
    try:
        return F.sketch_features(emb, drawings, tta)
    except DecodeError:
        raise
    except (OSError, ValueError) as e:  # a damaged file Pillow half-read
        raise DecodeError(f"Cannot read the drawing: {e}.") from e


def evaluate_sketch(ws: Workspace, sketch_dir: Path, *, adapter: str | None = None,
                    codes: str | None = None, cache_dir: Path | None = None,
                    tta: bool = False, max_queries: int | None = None, seed: int = 0
                    ) -> dict[str, Any]:
    """Every sketch in ``sketch_dir/<class>/`` queries the workspace's photos; relevance:
    the photo's label is the sketch's folder. mAP, MRR, P@10, the 11-point PR curve,
    latency per query, bytes per image."""
    from imgatlas.evaluate.retrieval import (
        average_precision,
        pr_curve,
        precision_at,
        reciprocal_rank,
    )
    from imgatlas.index._stage import load_index

    queries = _sketch_files(sketch_dir)
    if max_queries and len(queries) > max_queries:
        pick = np.random.default_rng(seed).choice(len(queries), max_queries, replace=False)
        queries = [queries[i] for i in sorted(pick)]
    ci, ids, meta = load_index(ws, codes, domain="sketch")
    emb, a = _query_side(ws, meta, adapter, cache_dir)
    info = ws.display_and_label()
    labels = np.array([info[int(i)][1] for i in ids], dtype=object)
    if all(lab is None for lab in labels):
        raise ConfigError("The workspace's photos have no labels to score against; scan "
                          "with --labels-from-folders.")
    n = len(ids)
    ranked, rel_counts, lat = [], [], []
    qlab = []
    for path, cls in queries:
        t = time.perf_counter()
        Q = _fused_queries(emb, a, [path], tta)
        _, rows = ci.search(Q, n)
        lat.append((time.perf_counter() - t) * 1000)
        ranked.append(rows[0])
        rel_counts.append(int((labels == cls).sum()))
        qlab.append(cls)
    R = np.stack(ranked)
    rel = (R >= 0) & (labels[np.maximum(R, 0)] == np.array(qlab, dtype=object)[:, None])
    n_rel = np.array(rel_counts)
    ap = average_precision(rel, n_rel)
    levels, precision = pr_curve(rel, n_rel)
    size = ci.bytes_per_image()
    classes = sorted(set(qlab))
    return {"map": float(ap.mean()), "mrr": float(reciprocal_rank(rel).mean()),
            "p_at_10": float(precision_at(rel, 10).mean()),
            "pr_curve": {"recall": levels, "precision": precision},
            "n_queries": len(queries), "n_photos": n,
            "ms_per_query_p50": float(np.percentile(lat, 50)),
            "ms_per_query_p99": float(np.percentile(lat, 99)),
            "bytes_per_image": size["code_bytes"],
            "per_class_map": {c: float(ap[np.array(qlab) == c].mean()) for c in classes},
            "classes_without_photos": [c for c in classes if not (labels == c).any()],
            "adapter": meta.get("adapter_path"), "codes": meta["codes"],
            "line_store": meta["features"], "tta": tta}


def _sketch_files(root: Path) -> list[tuple[str, str]]:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{printable(root)} is not a folder of class folders of sketches.")
    out = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls.iterdir()):
            if f.suffix.lower() in SKETCH_EXTENSIONS:
                out.append((str(f), printable(cls.name)))
    if not out:
        raise ConfigError(f"No sketches in class subfolders of {printable(root)}.")
    return out
