"""Geometry of a recorded run: its clustering space, a 2-D map, and representative images."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.errors import ConfigError
from imgatlas.reduce import make_reducer
from imgatlas.store import Workspace

MAP_METHODS = defaults.MAP_METHODS
UMAP_MAP_MAX = 100_000  # above, UMAP's 2-D layout takes minutes on 2 cores: PCA instead
MAP_PREPCA = 50  # UMAP runs on a 50-d PCA of the features: same picture, faster kNN
MAP_NEIGHBORS = 15


def clustering_space(ws: Workspace, run: dict[str, Any], ids: np.ndarray, reduce: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, Z)``: the run's feature vectors, and (if ``reduce``) the same after the run's
    reduction.

    Reductions are seeded, so this is the space the run clustered in (the run stores
    assignments, not its reduced vectors: they are cheap to rebuild and costly to keep).
    """
    params = run["params"]
    sid, X = ws.run_store(run).read(ids)  # only these rows: a part report maps a sample
    pos = np.searchsorted(sid, ids)
    if np.any(pos >= len(sid)) or np.any(sid[np.minimum(pos, len(sid) - 1)] != ids):
        raise ConfigError(f"Run {run['id']} clustered images whose features are gone.")
    X = np.asarray(X[pos], dtype=np.float32)
    if not reduce:
        return X, None
    reducer = make_reducer(params.get("reduce", "none"), random_state=params.get("seed", 0))
    Z = reducer.fit_transform(X) if reducer is not None else X
    return X, np.ascontiguousarray(Z, dtype=np.float32)


def map_coordinates(ws: Workspace, run: dict[str, Any], X: np.ndarray, method: str = "auto",
                    ids: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """2-D coordinates of every image of the run, scaled to [0, 1]; cached per run. A run
    derived from another (a correction, new images placed) starts from its parent's map
    when ``ids`` (the rows of ``X``) are given: the images they share keep their places,
    new ones are put at the mean place of their nearest shared neighbours, so a person's map
    does not move under them after a small change.

    The map projects the L2-normalised features, not the clustering space: a reduction such
    as kNN smoothing pulls each cluster into a tight ball, and UMAP then scatters those balls
    to the corners with nothing to see inside them. Coloured by cluster, the feature map also
    shows where the clustering cut through a continuous region.
    """
    from sklearn.preprocessing import normalize

    Z = normalize(X)
    if method not in MAP_METHODS:
        raise ConfigError(f"Unknown map {method!r}; use {', '.join(MAP_METHODS)}.")
    if method == "auto":
        method = "umap" if len(Z) <= UMAP_MAP_MAX else "pca"
    cache = ws.path / "maps" / f"run-{run['id']}-{method}.npy"
    if cache.exists():
        xy = np.load(cache)
        if xy.shape == (len(Z), 2):
            return xy, method
    if ids is not None:
        xy = _from_parent_map(ws, run, ids, Z, method)
        if xy is not None:
            _save_atomic(cache, xy)
            return xy, method
    seed = run["params"].get("seed", 0)
    if method == "pca" or len(Z) < 5:
        from sklearn.decomposition import PCA

        xy = PCA(2, random_state=seed).fit_transform(Z) if len(Z) >= 2 else np.zeros((len(Z), 2))
        method = "pca"
    else:
        xy = _umap_2d(Z, seed)
    lo, hi = xy.min(0), xy.max(0)
    xy = ((xy - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)
    _save_atomic(cache, xy)
    return xy, method


def _from_parent_map(ws: Workspace, run: dict[str, Any], ids: np.ndarray, Z: np.ndarray,
                     method: str, neighbours: int = 5) -> np.ndarray | None:
    parent = run["params"].get("derived_from")
    cache = ws.path / "maps" / f"run-{parent}-{method}.npy"
    if parent is None or not cache.exists():
        return None
    parent_ids = ws.assignments(int(parent))[0]
    xy_parent = np.load(cache)
    if xy_parent.shape != (len(parent_ids), 2):  # a part report's sample: not every image
        return None
    pos = np.searchsorted(parent_ids, ids)
    pos = np.minimum(pos, len(parent_ids) - 1)
    known = parent_ids[pos] == ids
    if known.sum() < max(neighbours, len(ids) // 2):
        return None
    xy = np.empty((len(ids), 2), np.float32)
    xy[known] = xy_parent[pos[known]]
    if (~known).any():
        import faiss

        index = faiss.IndexFlatIP(Z.shape[1])
        index.add(np.ascontiguousarray(Z[known], dtype=np.float32))
        _, nn = index.search(np.ascontiguousarray(Z[~known], dtype=np.float32), neighbours)
        xy[~known] = xy[known][nn].mean(1)
    return xy


def _umap_2d(Z: np.ndarray, seed: int) -> np.ndarray:
    """UMAP to 2-D on a PCA-50 of ``Z``, its kNN graph computed exactly by faiss.

    Handing UMAP the graph skips pynndescent, whose numba kernels are not cached and cost
    ~6 s of compilation in every new process; 200 epochs (UMAP uses 500 up to 10,000 points)
    give the same picture in a fraction of the time.
    """
    import faiss
    import umap
    from sklearn.decomposition import PCA

    if Z.shape[1] > MAP_PREPCA and len(Z) > MAP_PREPCA:
        Z = PCA(MAP_PREPCA, random_state=seed).fit_transform(Z)
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    k = min(MAP_NEIGHBORS, len(Z) - 1)
    index = faiss.IndexFlatL2(Z.shape[1])
    index.add(Z)
    d2, nn = index.search(Z, k)
    knn = (nn, np.sqrt(np.maximum(d2, 0)), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": intended
        return umap.UMAP(n_components=2, n_neighbors=k, min_dist=0.1, n_epochs=200,
                         random_state=seed, n_jobs=1, precomputed_knn=knn).fit_transform(Z)


def _save_atomic(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, a)
    os.replace(tmp, path)


def rank_by_centrality(distance: np.ndarray, clusters: np.ndarray) -> dict[int, np.ndarray]:
    """Per cluster, its members' row indices ordered from the centre outwards.

    The first rows are the cluster's most typical images (nearest the members' mean in the
    clustering space; for k-medoids the medoid is near it), the last its strays. Noise keeps
    the catalog order.
    """
    out: dict[int, np.ndarray] = {}
    for c in np.unique(clusters):
        rows = np.flatnonzero(clusters == c)
        if c >= 0:
            rows = rows[np.argsort(distance[rows], kind="stable")]
        out[int(c)] = rows
    return out
