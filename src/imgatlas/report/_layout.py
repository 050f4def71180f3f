"""Geometry of a recorded run: its clustering space, a 2-D map, and representative images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._npy import save_npy_atomic
from imgatlas.errors import ConfigError
from imgatlas.reduce import make_reducer
from imgatlas.store import Workspace

MAP_METHODS = defaults.MAP_METHODS
UMAP_MAP_MAX = 100_000  # above, UMAP's 2-D layout takes minutes on 2 cores: PCA instead
MAP_PREPCA = 50  # UMAP runs on a 50-d PCA of the features: same picture, faster kNN
MAP_PCA_SAMPLE = 3000  # images the PCA's directions are found on
MAP_NEIGHBORS = 15
# Layout epochs: UMAP's own 200 up to MAP_FEWER_EPOCHS_FROM images, half that above. On dev
# CIFAR-10 + Fashion-MNIST, 10,000 images: 100 epochs kept trustworthiness (0.957 either way)
# and 0.182 of each image's 15 neighbours against 0.190, in 2.6 s instead of 4.8 s.
MAP_EPOCHS = 200
MAP_FEWER_EPOCHS_FROM = 5_000


def clustering_space(ws: Workspace, run: dict[str, Any], ids: np.ndarray, reduce: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, Z)``: the run's feature vectors, and (if ``reduce``) the same after the run's
    reduction.

    The reduced vectors are those the run kept (``W/spaces/``: its own, or for a correction
    its parent's, up the chain); a run without them (made by an earlier imgatlas) has its
    seeded reduction fitted again, which gives the space it clustered in.
    """
    params = run["params"]
    sid, X = ws.run_store(run).read(ids)  # only these rows: a part report maps a sample
    pos = np.searchsorted(sid, ids)
    if np.any(pos >= len(sid)) or np.any(sid[np.minimum(pos, len(sid) - 1)] != ids):
        raise ConfigError(f"Run {run['id']} clustered images whose features are gone.")
    X = np.asarray(X[pos], dtype=np.float32)
    if not reduce:
        return X, None
    kept = kept_space(ws, run, ids)
    if kept is not None:
        return X, kept
    reducer = make_reducer(params.get("reduce", "none"), random_state=params.get("seed", 0))
    Z = reducer.fit_transform(X) if reducer is not None else X
    return X, np.ascontiguousarray(Z, dtype=np.float32)


def kept_space(ws: Workspace, run: dict[str, Any], ids: np.ndarray) -> np.ndarray | None:
    """The reduced vectors of ``ids`` kept for ``run`` or the nearest run it derives from
    that kept them, or None when that space does not hold every one of ``ids``."""
    kept = _nearest_kept(ws, run)
    rows = None if kept is None else _rows_of(kept[0], ids)
    return None if rows is None else np.ascontiguousarray(kept[1][rows])


def grown_space(ws: Workspace, parent: dict[str, Any], ids: np.ndarray,
                neighbours: int = 10) -> tuple[np.ndarray, bool] | None:
    """``(Z, grown)``: ``ids`` in ``parent``'s kept space, the images it did not cluster
    placed at the mean of their ``neighbours`` nearest clustered images' vectors (cosine on
    the features; the default reduction's last step is such a neighbour mean), ``grown``
    when some were placed; None when the parent kept no space or most images are new."""
    from sklearn.preprocessing import normalize

    kept = _nearest_kept(ws, parent)
    if kept is None:
        return None
    store = ws.run_store(parent)

    def unit_rows(mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(normalize(np.asarray(store.read(ids[mask])[1],
                                                         np.float32)))

    return carried_over(kept[0], kept[1], ids, unit_rows, neighbours)


def carried_over(old_ids: np.ndarray, old_values: np.ndarray, ids: np.ndarray,
                 unit_rows: Any, neighbours: int) -> tuple[np.ndarray, bool] | None:
    """``(values, placed)`` of ``ids``: an earlier run's row where it had one, else the mean
    of the ``neighbours`` nearest such rows (cosine on ``unit_rows(mask)``, the unit-length
    features of ``ids[mask]``); ``placed`` when some were new. None when most are new."""
    pos = np.minimum(np.searchsorted(old_ids, ids), len(old_ids) - 1)
    known = old_ids[pos] == ids
    if known.sum() < max(neighbours, len(ids) // 2):
        return None
    out = np.empty((len(ids), old_values.shape[1]), np.float32)
    out[known] = old_values[pos[known]]
    if (~known).any():
        import faiss

        A = unit_rows(known)
        index = faiss.IndexFlatIP(A.shape[1])
        index.add(A)
        _, nn = index.search(unit_rows(~known), neighbours)
        out[~known] = out[known][nn].mean(1)
    return out, bool((~known).any())


def _nearest_kept(ws: Workspace, run: dict[str, Any]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ids, Z)`` kept by ``run`` or the nearest run up its chain of derivations."""
    while True:
        kept = ws.space(run["id"])
        parent = run["params"].get("derived_from")
        if kept is not None or parent is None:
            return kept
        run = ws.get_run(int(parent), "cluster")


def _rows_of(kept_ids: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    if not len(kept_ids):
        return None
    pos = np.minimum(np.searchsorted(kept_ids, ids), len(kept_ids) - 1)
    return pos if np.array_equal(kept_ids[pos], ids) else None


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
    method = map_method(method, len(Z))
    cache = map_cache(ws, run["id"], method)
    if cache.exists():
        xy = np.load(cache)
        if xy.shape == (len(Z), 2):
            return xy, method
    if ids is not None:
        xy = _from_parent_map(ws, run, ids, Z, method)
        if xy is not None:
            save_npy_atomic(cache, xy)
            return xy, method
    xy, method = lay_out(Z, method, run["params"].get("seed", 0))
    save_npy_atomic(cache, xy)
    return xy, method


def map_cache(ws: Workspace, run_id: int, method: str) -> Path:
    """Where the map of run ``run_id`` laid out by ``method`` is kept."""
    return ws.path / "maps" / f"run-{run_id}-{method}.npy"


def lay_out(Z: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """``(xy, method used)``: the 2-D map of the unit-length rows ``Z`` by ``method``
    (``umap`` or ``pca``; ``pca`` below 5 rows), scaled to [0, 1]."""
    if method == "pca" or len(Z) < 5:
        from sklearn.decomposition import PCA

        xy = PCA(2, random_state=seed).fit_transform(Z) if len(Z) >= 2 else np.zeros((len(Z), 2))
        method = "pca"
    else:
        xy = _umap_2d(Z, seed)
    lo, hi = xy.min(0), xy.max(0)
    return ((xy - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32), method


def map_method(method: str, n: int) -> str:
    """The layout ``method`` names for a map of ``n`` images (``auto``: UMAP up to
    ``UMAP_MAP_MAX``, PCA above)."""
    if method not in MAP_METHODS:
        raise ConfigError(f"Unknown map {method!r}; use {', '.join(MAP_METHODS)}.")
    return method if method != "auto" else "umap" if n <= UMAP_MAP_MAX else "pca"


def _from_parent_map(ws: Workspace, run: dict[str, Any], ids: np.ndarray, Z: np.ndarray,
                     method: str, neighbours: int = 5) -> np.ndarray | None:
    parent = run["params"].get("derived_from")
    if parent is None or not (cache := map_cache(ws, int(parent), method)).exists():
        return None
    parent_ids = ws.assignments(int(parent))[0]
    xy_parent = np.load(cache)
    if xy_parent.shape != (len(parent_ids), 2):  # a part report's sample: not every image
        return None
    placed = carried_over(parent_ids, xy_parent, ids,
                          lambda mask: np.ascontiguousarray(Z[mask], dtype=np.float32),
                          neighbours)
    return None if placed is None else placed[0]


def _umap_2d(Z: np.ndarray, seed: int) -> np.ndarray:
    """UMAP to 2-D on a PCA-50 of ``Z``: its kNN graph computed exactly by faiss, the fuzzy
    graph in NumPy (:func:`fuzzy_graph`), then umap-learn's own spectral start and layout.

    umap-learn compiles its numba kernels in every new process and caches none of them:
    handing UMAP the kNN graph skips pynndescent's (~6 s), and building the fuzzy graph here
    skips ``fuzzy_simplicial_set``'s (~9 s on 2 cores; the arithmetic itself takes 0.1 s at
    10,000 images); the layout's epoch kernel is compiled once per machine
    (:func:`use_cached_layout_kernel`). 200 epochs (UMAP uses 500 up to 10,000 points), 100
    from 5,000 images (:func:`map_epochs`), give the same picture in a fraction of the time.
    """
    import faiss
    from sklearn.decomposition import PCA
    from sklearn.utils import check_random_state
    from umap import distances as udist
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    if Z.shape[1] > MAP_PREPCA and len(Z) > MAP_PREPCA:
        # the directions from a seeded sample: the same picture, a quarter of the time at
        # 10,000 images (the randomized SVD of all of them was 1.6 s of the report)
        rows = (np.random.default_rng(seed).choice(len(Z), MAP_PCA_SAMPLE, replace=False)
                if len(Z) > MAP_PCA_SAMPLE else slice(None))
        Z = PCA(MAP_PREPCA, random_state=seed).fit(Z[rows]).transform(Z)
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    k = min(MAP_NEIGHBORS, len(Z) - 1)
    index = faiss.IndexFlatL2(Z.shape[1])
    index.add(Z)
    d2, nn = index.search(Z, k)
    graph = fuzzy_graph(nn, np.sqrt(np.maximum(d2, 0)))
    a, b = find_ab_params(1.0, 0.1)  # spread 1, min_dist 0.1: UMAP's defaults
    use_cached_layout_kernel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xy, _ = simplicial_set_embedding(
            Z, graph, 2, 1.0, a, b, 1.0, 5, map_epochs(len(Z)), "spectral",
            check_random_state(seed),
            udist.named_distances["euclidean"], {}, False, {}, False,
            udist.named_distances_with_gradients["euclidean"], {}, True, False, False,
            tqdm_kwds={"disable": True})
    return np.asarray(xy)


def map_epochs(n: int) -> int:
    """Layout epochs for a map of ``n`` images (see :data:`MAP_EPOCHS`)."""
    return MAP_EPOCHS if n < MAP_FEWER_EPOCHS_FROM else MAP_EPOCHS // 2


def use_cached_layout_kernel() -> bool:
    """Have umap-learn lay out with its own epoch kernel compiled through numba's on-disk
    cache: umap-learn compiles it in every process (1-3 s of every report's map); cached,
    only the first map on a machine pays. The same function, so the same layout (tested).
    False (umap-learn's own kernel kept) where its internals or a writable cache are not
    there."""
    global _UMAP_KERNEL
    try:
        import numba
        from umap import layouts
    except ImportError:
        return False
    name = "_nb_optimize_layout_euclidean_single_epoch"
    current = getattr(layouts, name, None)
    if _UMAP_KERNEL is not None:
        return current is not _UMAP_KERNEL
    source = getattr(layouts, "_optimize_layout_euclidean_single_epoch", None)
    if current is None or source is None:
        return False
    _UMAP_KERNEL = current
    try:
        setattr(layouts, name, numba.njit(source, fastmath=True, parallel=False, cache=True))
    except Exception:  # noqa: BLE001 - nowhere to cache: umap-learn's kernel as it is
        return False
    return True


_UMAP_KERNEL: Any = None  # umap-learn's own compiled kernel, replaced by the cached one


def fuzzy_graph(nn: np.ndarray, dist: np.ndarray, n_iter: int = 64) -> Any:
    """UMAP's fuzzy simplicial set of a kNN graph (``nn``, ``dist``: each row's neighbours,
    itself first, and their distances), as ``umap.umap_.fuzzy_simplicial_set`` computes it
    with ``local_connectivity=1`` and the fuzzy union, vectorised over all rows: each row's
    distance to its nearest other point (rho), and the bandwidth (sigma, by bisection) at
    which its memberships sum to log2(k)."""
    from scipy.sparse import coo_matrix

    n, k = nn.shape
    dist = dist.astype(np.float64)
    others = dist[:, 1:]
    positive = np.where(others > 0, others, np.inf)
    first = positive.min(1)
    rho = np.where(np.isfinite(first), first, 0.0)
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    done = np.zeros(n, dtype=bool)
    for _ in range(n_iter):
        d = others - rho[:, None]
        # exp of the clipped distance: the masked-out side would overflow (and warn)
        psum = np.where(d > 0, np.exp(-np.maximum(d, 0) / mid[:, None]), 1.0).sum(1)
        done |= np.abs(psum - target) < 1e-5
        up = ~done & (psum <= target)  # too few: a wider bandwidth
        down = ~done & (psum > target)
        hi = np.where(down, mid, hi)
        lo = np.where(up, mid, lo)
        mid = np.where(down, (lo + hi) / 2,
                       np.where(up, np.where(np.isinf(hi), mid * 2, (lo + hi) / 2), mid))
    floor = 1e-3 * np.where(rho > 0, dist.mean(1), dist.mean())
    sigma = np.maximum(mid, floor)
    d = dist - rho[:, None]
    vals = np.where((d <= 0) | (sigma[:, None] == 0), 1.0,
                    np.exp(-np.maximum(d, 0) / sigma[:, None]))
    vals[nn == np.arange(n)[:, None]] = 0.0  # a point is not its own neighbour
    rows = np.repeat(np.arange(n), k)
    ok = nn.ravel() >= 0
    P = coo_matrix((vals.ravel()[ok], (rows[ok], nn.ravel()[ok])), shape=(n, n)).tocsr()
    P.eliminate_zeros()
    Pt = P.transpose()
    G = (P + Pt - P.multiply(Pt)).tocoo()
    G.eliminate_zeros()
    return G


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
