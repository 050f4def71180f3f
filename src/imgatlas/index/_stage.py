"""The index and search stages: build a code index over a feature store, swap it in
atomically, open it, and answer queries by file or by image id."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.index._codes import CodeIndex
from imgatlas.index._spec import parse_spec
from imgatlas.store import FeatureStore, Workspace, fingerprint, io_errors


def _slug(spec: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", spec.lower()).strip("-")


DOMAINS = ("photo", "sketch")  # photo: search by image; sketch: the photos' line maps


def index_dir(ws: Workspace, domain: str = "photo") -> Path:
    return ws.path / ("index" if domain == "photo" else f"index-{domain}")


def build_index(ws: Workspace, store: FeatureStore, codes: str | None = None,
                seed: int = defaults.SEED, *, domain: str = "photo",
                transform: Any = None, extra_meta: dict[str, Any] | None = None,
                shards: dict[str, Any] | None = None,
                exclude: set[int] | None = None,
                arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Fit a :class:`CodeIndex` on the store's vectors (through ``transform``, e.g. a sketch
    adapter, when given) and swap it in atomically.

    ``shards`` (``engine``, ``shard_size``, ``address``, ``num_workers``) builds an IVF-PQ
    index shard by shard instead (see :mod:`imgatlas.index._sharded`): the vectors are
    never all in memory, and the index is the same. ``exclude``: image ids left out.
    ``arrays``: what queries need besides the codes (the sketch index's fitted map), saved
    beside them as ``arrays.npz`` (:func:`index_arrays` reads them).

    Each build goes to a fresh folder ``index/<slug>@<time>``; the symlink
    ``index/<slug>`` is then replaced in one ``rename``, so a reader (or a crash) sees the old
    complete index or the new complete one, never a partial one.
    """
    if shards is not None:
        ids, X = store.usable_ids(), None
        dim = store.dim
        if exclude:
            ids = ids[~np.isin(ids, list(exclude))]
    else:
        ids, X = store.read()
        if exclude:
            keep = ~np.isin(ids, list(exclude))
            ids, X = ids[keep], X[keep]
        if transform is not None and len(ids):
            X = transform(X)
        dim = X.shape[1]
    if len(ids) < 2:
        raise ConfigError("Need at least 2 embedded images to build an index.")
    spec = parse_spec(codes or defaults.codes(len(ids), dim))
    params = {"codes": str(spec), "features": store.key, "domain": domain,
              **(extra_meta or {}), **(shards or {})}
    with ws.recording("index", params, seed=seed, inputs=fingerprint(ids, store.key)) as run:
        t = time.perf_counter()
        if shards is not None:
            from imgatlas._shards import StoreFile
            from imgatlas.index._sharded import build_sharded

            ci = build_sharded(StoreFile.of(store), ids, str(spec), seed=seed, **shards)
        else:
            ci = CodeIndex(str(spec), random_state=seed).fit(X)
        run.estimator("index", ci)
        seconds = time.perf_counter() - t
        meta = {"codes": str(spec), "features": store.key, "factory": ci.factory_,
                "n": int(ci.n_), "dim": int(ci.dim_), "build_seconds": round(seconds, 3),
                "run_id": run.id, "domain": domain, **(extra_meta or {}),
                **ci.bytes_per_image()}
        if shards is not None:
            from imgatlas.index._sharded import describe

            meta = describe(meta, shards["shard_size"], shards["engine"])
        path = _swap_in(ws, ci, ids, meta, domain, arrays)
        run.results = meta
    return {**meta, "path": str(path)}


def _swap_in(ws: Workspace, ci: CodeIndex, ids: np.ndarray, meta: dict[str, Any],
             domain: str = "photo", arrays: dict[str, np.ndarray] | None = None) -> Path:
    root = index_dir(ws, domain)
    root.mkdir(exist_ok=True)
    slug = _slug(meta["codes"])
    final = root / f"{slug}@{time.time_ns()}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    with io_errors(f"writing index {final}"):
        try:
            tmp.mkdir()
            ci.save(tmp)
            np.save(tmp / "ids.npy", ids)
            if arrays:
                np.savez(tmp / "arrays.npz", **arrays)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        link = root / slug
        tmp_link = root / f".tmp-link-{slug}-{os.getpid()}"
        os.symlink(final.name, tmp_link)
        if link.is_dir() and not link.is_symlink():  # a workspace copied with links followed
            shutil.rmtree(link)
        os.replace(tmp_link, link)
    for old in root.glob(f"{slug}@*"):  # superseded builds
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return link


def built_indexes(ws: Workspace, domain: str = "photo") -> list[str]:
    """The code specs of the indexes built in the workspace, oldest build first."""
    root = index_dir(ws, domain)
    if not root.exists():
        return []
    links = sorted((p for p in root.glob("*") if p.is_symlink()),
                   key=lambda p: p.resolve().name)
    out = []
    for p in links:
        try:
            out.append(json.loads((p.resolve() / "meta.json").read_text())["codes"])
        except (OSError, ValueError, KeyError):
            continue
    return out


def load_index(ws: Workspace, codes: str | None = None, *, ef_search: int | None = None,
               nprobe: int | None = None, domain: str = "photo"
               ) -> tuple[CodeIndex, np.ndarray, dict[str, Any]]:
    """The current index for ``codes`` (or the most recent one), its image ids and meta;
    ``ef_search``/``nprobe`` set its search breadth (see :meth:`CodeIndex.set_search`)."""
    root = index_dir(ws, domain)
    links = sorted((p for p in root.glob("*") if p.is_symlink()),
                   key=lambda p: p.resolve().name) if root.exists() else []
    if not links:
        flag = " --sketch" if domain == "sketch" else ""
        what = "sketch index (the photos' line maps)" if domain == "sketch" else "search index"
        raise WorkspaceError(f"Workspace {ws.path} has no {what} yet; run "
                             f"'imgatlas index --workspace {ws.path}{flag}' first.")
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
    meta["path"] = str(folder)
    return ci, ids, meta


def index_arrays(meta: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays saved with an index (``build_index(arrays=...)``), None when it has none."""
    path = Path(meta["path"]) / "arrays.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise WorkspaceError(f"Search index {path.parent} is damaged ({e}); rebuild it.") from e


def index_store(ws: Workspace, meta: dict[str, Any]) -> FeatureStore:
    """The feature store an index was built on; a one-line error when it is gone."""
    store = ws.feature_store(meta["features"])
    if store is None:
        raise WorkspaceError(f"The index was built on features {meta['features']}, which are "
                             "no longer in the workspace; rebuild it with 'imgatlas index'.")
    return store
