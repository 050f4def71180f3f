"""The inspect stage: near-duplicate groups and per-image flags, recorded as a run.

Incremental: an image is compared with the collection once (the ``inspected`` table); a
rerun compares only the images that are new or changed since, against everything, and
re-derives the flags (cheap: they read stored measures). Pixel measures normally come from
the embed stage's decode threads; an image without them (embedded by an older imgatlas, by
the Ray engine, or whose file changed) is decoded and measured here.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from imgatlas._progress import progress_bar
from imgatlas.decode import DEFAULT_MAX_PIXELS, load_rgb, read_file
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.inspect._checks import CHECKS, Measures, run_checks
from imgatlas.inspect._duplicates import K_NEIGHBOURS, PAIRS_VERSION, Collection, find_pairs
from imgatlas.inspect._groups import near_duplicate_groups
from imgatlas.inspect._leaks import check_splits
from imgatlas.inspect._pixels import SIDE, STATS_VERSION, pixel_stats, turn_bits
from imgatlas.inspect._verify import Verifier
from imgatlas.store import FeatureStore, Status, Workspace, fingerprint


def inspect_workspace(ws: Workspace, store: FeatureStore, *,
                      options: dict[str, dict[str, Any]] | None = None,
                      workers: int = 2, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      splits: list[str] | None = None, progress: bool = False
                      ) -> dict[str, Any]:
    """Find near-duplicate groups and flag unusable images (see the module docstring);
    ``splits``: the top-level folders that are a collection's train/val/test splits, whose
    shared near-duplicates are leaks (:mod:`imgatlas.inspect._leaks`)."""
    t0 = time.perf_counter()
    options = {name: CHECKS[name].options(given) for name, given in (options or {}).items()}
    rows = {r.id: r for r in ws.images(Status.OK)}
    if not rows:
        raise ConfigError(f"Workspace {ws.path} has no usable images; scan a folder first.")
    if splits:
        check_splits(ws, splits)
    params = {"features": store.key, "options": options, "stats_version": STATS_VERSION,
              **({"splits": list(splits)} if splits else {})}
    with ws.recording("inspect", params, inputs=fingerprint(sorted(rows), store.key)) as run:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        measured = _measure_missing(ws, rows, workers, max_pixels, progress)
        timings["measure"] = time.perf_counter() - t

        stats = ws.pixel_stats(STATS_VERSION)
        ids, X = store.read()
        have_stats = {int(i): r for r, i in enumerate(stats["id"].tolist())}
        keep = np.array([i in have_stats for i in ids.tolist()], dtype=bool)
        ids, X = ids[keep], X[keep]
        X = X.astype(np.float32)
        X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        srow = np.array([have_stats[int(i)] for i in ids], dtype=np.int64)
        c = Collection(ids=ids, X=np.ascontiguousarray(X), hashes=stats["phash"][srow],
                       sha=[rows[int(i)].sha256 or f"id{int(i)}" for i in ids],
                       turns=turn_bits(list(stats["turns"][srow])))

        t = time.perf_counter()
        compared = compared_key(store.key)
        done = ws.inspected(compared)
        new_rows = np.array([r for r, i in enumerate(ids.tolist()) if i not in done],
                            dtype=np.int64)
        if len(new_rows):
            ws.forget_pairs_of(ids[new_rows].tolist())
            verifier = Verifier({int(i): rows[int(i)].path for i in ids},
                                {int(i): (rows[int(i)].width or 0, rows[int(i)].height or 0)
                                 for i in ids}, max_pixels)
            bar = progress_bar(total=None, desc="inspect: verify", unit="pair",
                               enable=progress)
            pairs, near = find_pairs(c, new_rows, verifier, bar.update)
            bar.close()
            ws.record_duplicate_pairs(p.row() for p in pairs)
            ws.record_inspected(compared, _merge_neighbours(done, near, c, new_rows).items())
        timings["compare"] = time.perf_counter() - t

        t = time.perf_counter()
        neighbours = ws.inspected(compared)
        width = {i: stats["edge_width"][r] for i, r in have_stats.items()}
        groups = near_duplicate_groups(ws, width)
        m = _measures(ws, rows, stats, neighbours, groups)
        flags = run_checks(m, options)
        ws.replace_flags(run.id, flags)
        timings["flags"] = time.perf_counter() - t
        counts = _counts(groups, flags)
        run.results = {
            "n_images": len(rows), "n_compared": int(len(new_rows)),
            "n_measured": measured, "counts": counts,
            "seconds": round(time.perf_counter() - t0, 3),
            "timings": {k: round(v, 3) for k, v in timings.items()}, "run_id": run.id}
    return run.results


def compared_key(store_key: str) -> str:
    """What the ``inspected`` table keys an image's comparison by: the feature store and
    the rules it was compared under (PAIRS_VERSION; version 1 wrote the bare store key), so
    new rules compare every image again, once."""
    return store_key if PAIRS_VERSION == 1 else f"{store_key}#pairs{PAIRS_VERSION}"


def _measure_missing(ws: Workspace, rows: dict[int, Any], workers: int,
                     max_pixels: int | None, progress: bool) -> int:
    """Decode and measure the usable images that have no current measures; a file that no
    longer decodes is recorded as such, as embed would."""
    have = set(ws.pixel_stats(STATS_VERSION)["id"].tolist())
    todo = [rows[i] for i in sorted(rows) if i not in have]
    if not todo:
        return 0

    def measure(row: Any) -> tuple[int, str, Any]:
        try:
            return row.id, row.sha256, pixel_stats(load_rgb(read_file(row.path), (SIDE, SIDE),
                                                            max_pixels=max_pixels))
        except DecodeError as e:
            return row.id, row.sha256, e

    bar = progress_bar(total=len(todo), desc="inspect: measure", unit="img", enable=progress)
    good, failed = [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, sha, res in pool.map(measure, todo):
            if isinstance(res, Exception):
                failed.append((i, str(res) or type(res).__name__))
            else:
                good.append((i, sha or f"id{i}", res.as_row()))
            bar.update(1)
            if len(good) >= 512:
                ws.record_pixel_stats(STATS_VERSION, good)
                good = []
    bar.close()
    ws.record_pixel_stats(STATS_VERSION, good)
    if failed:
        ws.mark_decode_errors(failed)
    return len(todo) - len(failed)


def _merge_neighbours(done: dict[int, np.ndarray], near: dict[int, np.ndarray],
                      c: Collection, new_rows: np.ndarray) -> dict[int, np.ndarray]:
    """The new images' nearest-neighbour similarities, and the older images' updated where a
    new image is now among their nearest."""
    out = dict(near)
    new_ids = c.ids[new_rows]
    old_ids = np.array([i for i in c.ids.tolist() if i in done], dtype=np.int64)
    if len(old_ids) and len(new_ids):
        old_rows = np.array([c.row[int(i)] for i in old_ids])
        for start in range(0, len(old_rows), 4096):  # (4096 x new) similarities at a time
            block = old_rows[start:start + 4096]
            sims = c.X[block] @ c.X[new_rows].T
            for r, srow in zip(block.tolist(), sims, strict=True):
                i = int(c.ids[r])
                merged = np.sort(np.concatenate([done[i], srow[srow < 0.9999]]))[::-1]
                if merged[:K_NEIGHBOURS].tolist() != done[i][:K_NEIGHBOURS].tolist():
                    out[i] = merged[:K_NEIGHBOURS].astype(np.float32)
    return out


def _measures(ws: Workspace, rows: dict[int, Any], stats: dict[str, np.ndarray],
              neighbours: dict[int, np.ndarray], groups: list[Any]) -> Measures:
    ids = stats["id"]
    by_id = {int(i): r for r, i in enumerate(ids.tolist())}
    sharper: dict[int, float] = {}
    width, side = stats["edge_width"], stats["side"]
    for g in groups:
        members = [by_id[i] for i in [g.keep, *g.copies] if i in by_id]
        known = [r for r in members if not np.isnan(width[r])]
        for r in known:
            # only copies measured at (about) the same size say how sharp this one could be:
            # a smaller copy's edges are narrower in pixels but not sharper
            peers = [o for o in known if o != r and abs(side[o] - side[r]) <= 0.12 * side[r]]
            if peers:
                sharper[r] = float(min(width[o] for o in peers))
    return Measures(
        ids=ids,
        width=np.array([rows[int(i)].width or 0 for i in ids], dtype=np.float64),
        height=np.array([rows[int(i)].height or 0 for i in ids], dtype=np.float64),
        stats=stats,
        neighbour_similarity=np.array(
            [float(neighbours[int(i)].mean()) if len(neighbours.get(int(i), ())) else np.nan
             for i in ids], dtype=np.float64),
        sharper_copy=sharper)


def _counts(groups: list[Any], flags: list[tuple[int, str, float, str]]) -> dict[str, int]:
    out = {"near_duplicate_groups": len(groups),
           "near_duplicate_copies": sum(len(g.copies) for g in groups)}
    for name in CHECKS.names():
        out[name] = sum(1 for f in flags if f[1] == name)
    return out
