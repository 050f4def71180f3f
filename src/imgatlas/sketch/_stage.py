"""The sketch stages: embed the photos' line maps, index them, search by drawing, score a
folder of sketches, train an adapter from sketch-photo pairs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas import defaults
from imgatlas._text import printable
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.sketch import _features as F
from imgatlas.sketch._map import ALPHA, LineToPhotoMap, shipped_shift
from imgatlas.store import FeatureStore, Workspace

SKETCH_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
EXPAND = 5  # photos averaged into a query (3-10 within 0.5 point on dev Sketchy)


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
                progress: bool = False, batch_size: int = defaults.BATCH_SIZE,
                backbone: Any = None) -> dict[str, Any]:
    """Embed every usable photo's line map (resumable, as embed is) into its own store;
    ``backbone``: the network to embed them with (default: the photos' own, at ``block``),
    e.g. the line branch distilled on this collection."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import embed_workspace

    bb = backbone
    if bb is None:
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


class _Gallery:
    """What the sketch index holds: every photo's features in the sketch index's space (unit
    length, centred on the photos' mean: :meth:`LineToPhotoMap.photos`), beside the
    adapter's photo side when one is given. Store-like (``key``, ``cfg``, ``read``) for
    :func:`build_index`, and read again for query expansion."""

    def __init__(self, photos: FeatureStore, fitted: LineToPhotoMap, adapter: Any) -> None:
        self.photos, self.map, self.adapter = photos, fitted, adapter
        self.key, self.cfg = photos.key, photos.cfg

    def read(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        pid, P = self.photos.read(ids)
        G = self.map.photos(P)
        return pid, (G if self.adapter is None else F.fuse(G, self.adapter.photos(P)))


def fit_line_map(photos: FeatureStore, lines: FeatureStore, backbone: str, detector: str, *,
                 alpha: float = ALPHA, shift: np.ndarray | None = None, seed: int = 0
                 ) -> tuple[LineToPhotoMap, str]:
    """The line->photo map fitted on every photo with both features; ``(map, where the
    sketch offset came from)``. ``shift``: the sketch domain's offset (default: the one
    shipped for this backbone and detector, else none)."""
    lid, L = lines.read()
    pid, P = photos.read(lid)
    L = L[np.isin(lid, pid)]
    if len(pid) < 2:
        raise ConfigError("Need at least 2 photos with line maps to fit the sketch index.")
    source = "given"
    if shift is None:
        shift = shipped_shift(backbone, detector)
        source = "shipped" if shift is not None else "none"
    fitted = LineToPhotoMap(alpha=alpha, sketch_shift=shift, random_state=seed).fit(L, P)
    return fitted, source


def build_sketch_index(ws: Workspace, *, codes: str | None = None,
                       adapter: str | os.PathLike[str] | None = None,
                       detector: str = F.DETECTOR, block: int | None = F.BLOCK,
                       features: str | None = None, cache_dir: Path | None = None,
                       seed: int = defaults.SEED, progress: bool = False,
                       alpha: float = ALPHA, shift: np.ndarray | None = None,
                       adapt: bool = False, refit: bool = False) -> dict[str, Any]:
    """``imgatlas index --sketch``: embed the line maps still missing, fit the line->photo
    map on the collection's photos (:mod:`imgatlas.sketch._map`), and index the photos in
    the map's photo space (beside the adapter's photo side when one is given). The map is
    stored with the index, so each rebuild refits it on the collection as it is then.

    ``adapt``: first distil the line branch's last blocks on the collection's photos
    (:mod:`imgatlas.sketch._distill`; minutes per 1,000 photos, PyTorch), reused until the
    collection changes by more than ``defaults.REFIT_GROWTH`` or ``refit``; the line maps
    and every drawing are then embedded by the distilled network."""
    from imgatlas.index import build_index

    photos = ws.pick_store(features)
    base = _base_backbone(ws, features)
    a = _adapter_or_none(adapter, base)
    line_bb, distilled = None, None
    if adapt:
        from imgatlas.index import store_backbone
        from imgatlas.sketch._distill import distilled_backbone

        if block is not None:
            raise ConfigError("--adapt distils the network's last blocks; it takes no block.")
        line_bb, distilled = distilled_backbone(
            ws, photos, store_backbone(photos, cache_dir), detector=detector, seed=seed,
            refit=refit, progress=progress)
    emb = embed_lines(ws, detector=detector, block=block, features=features,
                      cache_dir=cache_dir, progress=progress, backbone=line_bb)
    lines = ws.feature_store(emb["store"])
    t = time.perf_counter()
    no_offset = distilled is not None and shift is None
    if no_offset:  # the shipped offset is the undistilled network's (no gain measured)
        shift = np.zeros(lines.dim, np.float64)
    fitted, source = fit_line_map(photos, lines, base, detector, alpha=alpha, shift=shift,
                                  seed=seed)
    source = "none (distilled lines)" if no_offset else source
    fit_seconds = time.perf_counter() - t
    gallery = _Gallery(photos, fitted, a)
    n = len(photos.done_ids())
    extra = {"adapter": a.identity if a else None,
             "adapter_path": str(Path(adapter).resolve()) if a else None,
             "photo_store": photos.key, "line_store": lines.key, "backbone": base,
             "map": {"kind": "ridge", "alpha": alpha, "n_photos": int(fitted.n_photos_),
                     "sketch_shift": source, "detector": detector,
                     "fit_seconds": round(fit_seconds, 3)},
             "line_backbone": lines.cfg["backbone"]["name"],
             "distilled": ({k: v for k, v in distilled.items() if k != "history"}
                           if distilled else None)}
    res = build_index(ws, gallery, codes or ("float" if n < 20_000 else None), seed,
                      domain="sketch", extra_meta=extra, arrays=fitted.arrays())
    return {**res, "embedded": emb["embedded"], "line_store": lines.key}


class _QuerySide:
    """How a drawing becomes a query: the photos' backbone embeds it, the fitted map takes
    it to the photo space (beside the adapter's sketch side), and one round of query
    expansion adds the photos it lands nearest (average query expansion over the top
    :data:`EXPAND`: +5 points of mAP on dev Sketchy, two searches instead of one)."""

    def __init__(self, embedder: Any, fitted: LineToPhotoMap, adapter: Any,
                 gallery: _Gallery) -> None:
        self.embedder, self.map, self.adapter, self.gallery = embedder, fitted, adapter, gallery

    def vectors(self, drawings: list[Any], tta: bool) -> np.ndarray:
        S = _sketch_queries(self.embedder, drawings, tta)
        Q = self.map.transform(S)
        return Q if self.adapter is None else F.fuse(Q, self.adapter.sketches(S))

    def expand(self, ci: Any, ids: np.ndarray, Q: np.ndarray,
               skip: list[set[int]] | None = None, k: int = EXPAND) -> np.ndarray:
        """``Q`` plus the index vectors of each query's ``k`` nearest photos (minus the
        image ids in ``skip``), unit length."""
        if k <= 0 or len(ids) < 2:
            return Q
        extra = max((len(s) for s in skip), default=0) if skip else 0
        _, rows = ci.search(Q, min(len(ids), k + extra))
        out = []
        for j, (q, row) in enumerate(zip(Q, rows, strict=True)):
            near = [int(ids[r]) for r in row if r >= 0]
            if skip:
                near = [i for i in near if i not in skip[j]]
            _, G = self.gallery.read(np.array(sorted(near[:k]), dtype=np.int64))
            out.append(q + G.sum(0))
        return normalize(np.asarray(out, np.float32)).astype(np.float32)


def _query_side(ws: Workspace, meta: dict[str, Any], adapter: Any, cache_dir: Path | None
                ) -> _QuerySide:
    """The query side of a sketch index, checked against what the index was built with."""
    from imgatlas.embed import Embedder
    from imgatlas.index import index_arrays, store_backbone

    a = _adapter_or_none(adapter, meta.get("backbone", ""))
    if (a.identity if a else None) != meta.get("adapter"):
        have = meta.get("adapter_path") or "no adapter"
        raise ConfigError(f"The sketch index was built with {have}; build it again with "
                          "'imgatlas index --sketch" + (f" --adapter {printable(adapter)}'"
                                                         if adapter else "'") + ".")
    arrays = index_arrays(meta)
    if arrays is None or "map" not in meta:
        raise ConfigError("This sketch index was built by an older imgatlas, without the "
                          "line->photo map; build it again with 'imgatlas index --sketch'.")
    photos = ws.feature_store(meta.get("photo_store", ""))
    if photos is None:
        raise ConfigError("The photo features the sketch index was built on are gone; "
                          "build it again with 'imgatlas index --sketch'.")
    lines = ws.feature_store(meta.get("line_store", ""))
    if lines is None:
        raise ConfigError("The line-map features the sketch index was built on are gone; "
                          "build it again with 'imgatlas index --sketch'.")
    fitted = LineToPhotoMap.from_arrays(arrays, alpha=meta["map"]["alpha"])
    # drawings are embedded by the network that embedded the photos' line maps
    return _QuerySide(Embedder(store_backbone(lines, cache_dir)), fitted, a,
                      _Gallery(photos, fitted, a))


def search_sketch(ws: Workspace, drawings: list[bytes | str | os.PathLike[str]], *,
                  names: list[str] | None = None, k: int = 10, codes: str | None = None,
                  adapter: str | os.PathLike[str] | None = None,
                  cache_dir: Path | None = None, tta: bool = False,
                  expand: bool = True, as_built: bool = False) -> list[dict[str, Any]]:
    """Photos for each drawing (a file path or PNG bytes, e.g. from a canvas). ``as_built``:
    with the adapter the index was built with, if any (the web app's way)."""
    from imgatlas.index import load_index, results

    if k < 1:
        raise ConfigError(f"--k must be at least 1. Got {k} instead.")
    ci, ids, meta = load_index(ws, codes, domain="sketch")
    if as_built:
        adapter = meta.get("adapter_path")
    side = _query_side(ws, meta, adapter, cache_dir)
    Q = side.vectors(drawings, tta)
    if expand:
        Q = side.expand(ci, ids, Q)
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
                    tta: bool = False, max_queries: int | None = None, seed: int = 0,
                    expand: bool = True, exclude_source: bool = False) -> dict[str, Any]:
    """Every sketch in ``sketch_dir/<class>/`` queries the workspace's photos; relevance:
    the photo's label is the sketch's folder. mAP, MRR, P@10, the 11-point PR curve,
    latency per query, bytes per image. ``exclude_source``: each sketch's own source photo
    (Sketchy's naming: ``NAME-K.png`` draws ``NAME.jpg``) leaves the gallery for that
    query, so only other photos of the class count (no instance match)."""
    from imgatlas.evaluate.retrieval import (
        average_precision,
        pr_curve,
        precision_at,
        reciprocal_rank,
    )
    from imgatlas.index import load_index

    queries = _sketch_files(sketch_dir)
    if max_queries and len(queries) > max_queries:
        pick = np.random.default_rng(seed).choice(len(queries), max_queries, replace=False)
        queries = [queries[i] for i in sorted(pick)]
    ci, ids, meta = load_index(ws, codes, domain="sketch")
    side = _query_side(ws, meta, adapter, cache_dir)
    info = ws.display_and_label()
    labels = np.array([info[int(i)][1] for i in ids], dtype=object)
    if all(lab is None for lab in labels):
        raise ConfigError("The workspace's photos have no labels to score against; scan "
                          "with --labels-from-folders.")
    sources = _sources(ids, info) if exclude_source else {}
    n = len(ids)
    ranked, rel_counts, lat, excluded = [], [], [], 0
    qlab = []
    for path, cls in queries:
        skip = sources.get((Path(path).stem.rsplit("-", 1)[0], cls), set())
        t = time.perf_counter()
        Q = side.vectors([path], tta)
        if expand:
            Q = side.expand(ci, ids, Q, [skip])
        _, rows = ci.search(Q, n)
        lat.append((time.perf_counter() - t) * 1000)
        row = rows[0]
        if skip:
            gone = np.isin(ids[np.maximum(row, 0)], list(skip)) & (row >= 0)
            row = np.concatenate([row[~gone], np.full(int(gone.sum()), -1)])
            excluded += int(gone.sum())
        ranked.append(row)
        rel_counts.append(int((labels == cls).sum()) - len(skip))
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
            "photo_store": meta.get("photo_store"), "line_store": meta.get("line_store"),
            "map_fitted_on": meta["map"]["n_photos"], "sketch_shift": meta["map"][
                "sketch_shift"], "tta": tta, "expand": EXPAND if expand else 0,
            "exclude_source": exclude_source, "source_photos_excluded": excluded}


def _sources(ids: np.ndarray, info: dict[int, tuple[str, str | None]]
             ) -> dict[tuple[str, str | None], set[int]]:
    """``(file stem, label) -> image ids``: the photos a Sketchy-named sketch draws."""
    out: dict[tuple[str, str | None], set[int]] = {}
    for i in ids:
        path, label = info[int(i)]
        stem = os.path.splitext(os.path.basename(path))[0]
        out.setdefault((stem, label), set()).add(int(i))
    return out


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
