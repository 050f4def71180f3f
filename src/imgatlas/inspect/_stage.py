"""The inspect stage: near-duplicate groups and per-image flags, recorded as a run.

Incremental: an image is compared with the collection once (the ``inspected`` table); a
rerun compares only the images that are new or changed since, against everything, and
re-derives the flags (cheap: they read stored measures). Pixel measures normally come from
the embed stage's decode threads; an image without them (embedded by an older imgatlas, by
the Ray engine, or whose file changed) is decoded and measured here.

The comparison's memory does not grow with the collection beyond a code and the hashes per
image (:mod:`~imgatlas.inspect._space`, :mod:`~imgatlas.inspect._duplicates`): the
catalogue, the measures and the neighbours are read as arrays, the features in shards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from imgatlas._progress import progress_bar
from imgatlas._shards import StoreFile, check_engine
from imgatlas.decode import DEFAULT_MAX_PIXELS, load_rgb, read_file
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.inspect._candidates import Collection
from imgatlas.inspect._checks import CHECKS, Measures, run_checks
from imgatlas.inspect._duplicates import SHARD_SIZE, find_pairs
from imgatlas.inspect._groups import near_duplicate_groups
from imgatlas.inspect._leaks import check_splits
from imgatlas.inspect._pixels import (
    MIN_FOCUS_SIDE,
    SIDE,
    STATS_VERSION,
    TURNS,
    hash_bits,
    pixel_stats,
)
from imgatlas.inspect._rules import K_NEIGHBOURS, PAIRS_VERSION
from imgatlas.inspect._space import SearchSpace
from imgatlas.inspect._verify import Verifier
from imgatlas.store import FeatureStore, Workspace, fingerprint


def inspect_workspace(ws: Workspace, store: FeatureStore, *,
                      options: dict[str, dict[str, Any]] | None = None,
                      workers: int = 2, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      splits: list[str] | None = None, engine: str = "local",
                      address: str | None = None, num_workers: int | None = None,
                      shard_size: int = SHARD_SIZE, exact_up_to: int | None = None,
                      fresh: bool = False, progress: bool = False) -> dict[str, Any]:
    """Find near-duplicate groups and flag unusable images (see the module docstring);
    ``splits``: the top-level folders that are a collection's train/val/test splits, whose
    shared near-duplicates are leaks (:mod:`imgatlas.inspect._leaks`). ``engine``: where
    the search shards of ``shard_size`` new images run (the pairs do not depend on it);
    above ``exact_up_to`` images (default: EXACT_UP_TO) the features are searched as codes
    (:mod:`imgatlas.inspect._space`). ``fresh``: forget what earlier inspections compared
    and compare every image again."""
    t0 = time.perf_counter()
    check_engine(engine)
    options = {name: CHECKS[name].options(given) for name, given in (options or {}).items()}
    images = ws.comparable_images()
    if not len(images["id"]):
        raise ConfigError(f"Workspace {ws.path} has no usable images; scan a folder first.")
    if splits:
        check_splits(ws, splits)
    params = {"features": store.key, "options": options, "stats_version": STATS_VERSION,
              **({"splits": list(splits)} if splits else {}),
              **({"fresh": True} if fresh else {})}
    with ws.recording("inspect", params,
                      inputs=fingerprint(images["id"], store.key)) as run:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        measured = _measure_missing(ws, images["id"], workers, max_pixels, progress)
        timings["measure"] = time.perf_counter() - t

        t = time.perf_counter()
        stats = ws.pixel_stats(STATS_VERSION)
        ids = np.intersect1d(store.usable_ids(), stats["id"])
        srow = np.searchsorted(stats["id"], ids)
        irow = np.searchsorted(images["id"], ids)
        compared = compared_key(store.key)
        if fresh:
            ws.forget_comparisons(compared)
        done_ids, done_sims = ws.inspected(compared, K_NEIGHBOURS)
        new = ~np.isin(ids, done_ids)
        new_rows = np.flatnonzero(new)
        c = _collection(stats, srow, images, irow, new)
        if len(new_rows):
            space = SearchSpace.build(StoreFile.of(store), ids, exact_up_to=exact_up_to)
            c.index()
            timings["index"] = time.perf_counter() - t
            t = time.perf_counter()
            ws.forget_pairs_of(ids[new_rows].tolist())
            searched = progress_bar(total=len(new_rows), desc="inspect: search", unit="img",
                                    enable=progress)
            verified = progress_bar(total=None, desc="inspect: verify", unit="pair",
                                    enable=progress)
            found = find_pairs(space, c, new_rows, lambda wanted: _verifier(ws, wanted,
                                                                            max_pixels),
                               engine=engine, address=address, num_workers=num_workers,
                               shard_size=shard_size, searched=searched.update,
                               verified=verified.update)
            searched.close()
            verified.close()
            del space, c
            ws.record_duplicate_pairs(p.row() for p in found.pairs)
            ws.record_inspected(compared, _merge_neighbours(
                done_ids, done_sims, ids[found.rows], found.neighbours,
                ids[found.reverse[:, 0].astype(np.int64)], found.reverse[:, 2]))
        timings["compare"] = time.perf_counter() - t

        t = time.perf_counter()
        done_ids, done_sims = ws.inspected(compared, K_NEIGHBOURS)
        width = dict(zip(stats["id"].tolist(), stats["edge_width"].tolist(), strict=True))
        groups = near_duplicate_groups(ws, width)
        m = _measures(images, stats, done_ids, done_sims, groups)
        flags = run_checks(m, options)
        ws.replace_flags(run.id, flags)
        timings["flags"] = time.perf_counter() - t
        counts = _counts(groups, flags)
        run.results = {
            "n_images": len(images["id"]), "n_compared": int(len(new_rows)),
            "n_measured": measured, "counts": counts, "engine": engine,
            "seconds": round(time.perf_counter() - t0, 3),
            "timings": {k: round(v, 3) for k, v in timings.items()}, "run_id": run.id}
    return run.results


def _collection(stats: dict[str, np.ndarray], srow: np.ndarray,
                images: dict[str, np.ndarray], irow: np.ndarray, new: np.ndarray
                ) -> Collection:
    """What the comparison reads per image (rows ``srow`` of the measures, ``irow`` of the
    catalogue arrays): hashes, views' hashes, contents, sizes, which are new."""
    turns = stats["turns"][srow]
    turns = (turns.reshape(len(srow), len(TURNS), 8) if turns.shape[1] == 8 * len(TURNS)
             else np.zeros((len(srow), len(TURNS), 8), np.uint8))
    return Collection(bits=hash_bits(stats["phash"][srow]), turns=turns,
                      content=images["content"][irow],
                      big=np.minimum(images["width"][irow], images["height"][irow])
                      >= MIN_FOCUS_SIDE, new=new)


def _verifier(ws: Workspace, wanted: np.ndarray, max_pixels: int | None) -> Verifier:
    """A verifier that knows the files of the images ``wanted`` (the ones pairs to verify
    hold), looked up once."""
    rows = ws.images_by_id(wanted.tolist())
    return Verifier({i: r.path for i, r in rows.items()},
                    {i: (r.width or 0, r.height or 0) for i, r in rows.items()}, max_pixels)


def compared_key(store_key: str) -> str:
    """What the ``inspected`` table keys an image's comparison by: the feature store and
    the rules it was compared under (PAIRS_VERSION; version 1 wrote the bare store key), so
    new rules compare every image again, once."""
    return store_key if PAIRS_VERSION == 1 else f"{store_key}#pairs{PAIRS_VERSION}"


def _measure_missing(ws: Workspace, usable: np.ndarray, workers: int,
                     max_pixels: int | None, progress: bool) -> int:
    """Decode and measure the usable images that have no current measures; a file that no
    longer decodes is recorded as such, as embed would."""
    missing = np.setdiff1d(usable, ws.measured_ids(STATS_VERSION))
    if not len(missing):
        return 0
    found = ws.images_by_id(missing.tolist())
    todo = [found[i] for i in missing.tolist() if i in found]

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


def _merge_neighbours(done_ids: np.ndarray, done_sims: np.ndarray, new_ids: np.ndarray,
                      new_sims: np.ndarray, older: np.ndarray, older_sims: np.ndarray
                      ) -> Iterator[tuple[int, np.ndarray]]:
    """The new images' nearest-neighbour similarities, and the older images' updated where a
    new image is now among their nearest: those found among the new images' own nearest
    (an older image whose nearest a new one became is, nearly always, among the new one's
    nearest too; the outlier check reads only the mean of five)."""
    for i, sims in zip(new_ids.tolist(), new_sims, strict=True):
        yield i, sims[~np.isnan(sims)]
    if not len(older):
        return
    order = np.argsort(older, kind="stable")
    older, older_sims = older[order], older_sims[order]
    starts = np.flatnonzero(np.r_[True, older[1:] != older[:-1]])
    ends = np.r_[starts[1:], len(older)]
    at = np.searchsorted(done_ids, older[starts])
    width = done_sims.shape[1]
    for r, a, b in zip(at.tolist(), starts.tolist(), ends.tolist(), strict=True):
        had = done_sims[r][~np.isnan(done_sims[r])]
        merged = np.sort(np.concatenate([had, older_sims[a:b].astype(np.float32)]))[::-1]
        if merged[:width].tolist() != had[:width].tolist():
            yield int(done_ids[r]), merged[:width].astype(np.float32)


def _measures(images: dict[str, np.ndarray], stats: dict[str, np.ndarray],
              done_ids: np.ndarray, done_sims: np.ndarray, groups: list[Any]) -> Measures:
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
    irow = np.searchsorted(images["id"], ids)
    have = np.isin(ids, done_ids)
    similarity = np.full(len(ids), np.nan)
    if have.any():
        rows = done_sims[np.searchsorted(done_ids, ids[have])]
        counted = (~np.isnan(rows)).sum(axis=1)
        mean = np.nansum(rows, axis=1) / np.maximum(counted, 1)
        similarity[have] = np.where(counted > 0, mean, np.nan)
    return Measures(ids=ids, width=images["width"][irow].astype(np.float64),
                    height=images["height"][irow].astype(np.float64), stats=stats,
                    neighbour_similarity=similarity, sharper_copy=sharper)


def _counts(groups: list[Any], flags: list[tuple[int, str, float, str]]) -> dict[str, int]:
    out = {"near_duplicate_groups": len(groups),
           "near_duplicate_copies": sum(len(g.copies) for g in groups)}
    for name in CHECKS.names():
        out[name] = sum(1 for f in flags if f[1] == name)
    return out
