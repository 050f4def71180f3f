"""The Ray engine for `embed`: the pending images in deterministic shards, decoded and
embedded by a pool of Ray Data actors that each hold one ONNX Runtime session; each shard's
vectors land in a file written atomically; the one process holding the workspace lock
merges shard files into the feature store as they arrive.

A kill at any moment loses no finished shard: the next run merges the shard files it
finds before it plans what is left. On a cluster of several machines the images and the
workspace must be on storage every worker sees (the usual Ray set-up: NFS, a mounted
bucket), as workers read the files and write the shards where the driver reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._progress import progress_bar
from imgatlas._shards import connect_ray, one_line, require_ray
from imgatlas.backbones import Backbone
from imgatlas.embed._workspace import Plan, plan, summary
from imgatlas.errors import ConfigError, ImgatlasError
from imgatlas.store import Workspace, fingerprint

SHARD_DIR = "shards"
SHARD_SIZE = 1024


def shards(p: Plan, shard_size: int = SHARD_SIZE) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """The pending contents in shards of ``shard_size``, ordered by their first image id, each
    named by what it holds: the same pending set always gives the same shards."""
    items = sorted(((s, p.path_of[s]) for s in p.by_sha), key=lambda kv: min(p.by_sha[kv[0]]))
    out = []
    for i in range(0, len(items), shard_size):
        part = items[i:i + shard_size]
        name = hashlib.sha256("\n".join(s for s, _ in part).encode()).hexdigest()[:16]
        out.append((name, part))
    return out


class ShardEmbedder:
    """A Ray Data actor: one backbone session, each call embeds whole shards and writes each
    to ``<folder>/<name>.npz`` (a temporary name, then an atomic rename)."""

    def __init__(self, backbone: Backbone, folder: str, batch_size: int, threads: int,
                 max_pixels: int | None) -> None:
        from imgatlas.embed._embedder import Embedder

        self.embedder = Embedder(backbone, batch_size=batch_size, device="cpu",
                                 threads=threads, workers=max(1, threads),
                                 max_pixels=max_pixels)
        self.folder = Path(folder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names, counts = [], []
        for name, items in zip(batch["shard"], batch["items"], strict=True):
            pairs = [(s, bytes.fromhex(h)) for s, h in json.loads(str(items))]
            shas, vecs, failed, reasons = [], [], [], []
            for keys, X, failures, _ in self.embedder.iter_batches(pairs):
                shas += keys
                vecs.append(X)
                failed += [k for k, _ in failures]
                reasons += [r for _, r in failures]
            X = (np.vstack(vecs) if vecs
                 else np.empty((0, self.embedder.backbone.cfg.dim), np.float32))
            write_shard(self.folder / f"{name}.npz", shas, X, failed, reasons)
            names.append(str(name))
            counts.append(len(pairs))
        return {"shard": np.array(names), "items": np.array(counts)}


def write_shard(path: Path, shas: list[str], X: np.ndarray, failed: list[str],
                reasons: list[str]) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, shas=np.array(shas, dtype=str), X=X.astype(np.float32),
             failed=np.array(failed, dtype=str), reasons=np.array(reasons, dtype=str))
    os.replace(tmp, path)


def read_shard(path: Path) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    with np.load(path) as z:
        return (z["shas"].tolist(), z["X"],
                list(zip(z["failed"].tolist(), z["reasons"].tolist(), strict=True)))


def embed_workspace_ray(ws: Workspace, backbone: Backbone, *, address: str | None = None,
                        num_workers: int | None = None, threads: int | None = None,
                        batch_size: int = 32, shard_size: int = SHARD_SIZE,
                        l2_normalize: bool = False, dtype: str = "float32",
                        max_pixels: int | None = None, progress: bool = False
                        ) -> dict[str, Any]:
    """:func:`~imgatlas.embed.embed_workspace` on a Ray cluster (``address``; a local one
    started for this call when none is given and none is running)."""
    ray = require_ray()
    if shard_size < 1:
        raise ConfigError(f"shard_size must be an int >= 1. Got {shard_size} instead.")
    t0 = time.perf_counter()
    backbone.onnx_path()  # export once here, not in every actor at the same time
    p = plan(ws, backbone, l2_normalize=l2_normalize, dtype=dtype)
    folder = ws.path / SHARD_DIR / p.key
    folder.mkdir(parents=True, exist_ok=True)
    params = {"backbone": backbone.record(), "store": p.key, "engine": "ray",
              "address": address, "num_workers": num_workers, "threads": threads,
              "batch_size": batch_size, "shard_size": shard_size,
              "l2_normalize": l2_normalize, "dtype": dtype}
    pending = sorted(i for ids in p.by_sha.values() for i in ids)
    started_here = False
    n_done = n_failed = 0
    with ws.recording("embed", params, inputs=fingerprint(pending, p.key)) as run:
        bar = progress_bar(total=p.pending_images, desc=f"embed {backbone.name} (ray)",
                           unit="img", enable=progress)
        try:
            with p.store.open_writer(ws.max_image_id()) as writer:
                def merge(path: Path) -> None:
                    nonlocal n_done, n_failed
                    shas, X, failures = read_shard(path)
                    d, f = p.absorb(ws, writer, shas, X, failures, l2_normalize)
                    n_done, n_failed = n_done + d, n_failed + f
                    for s in shas + [s for s, _ in failures]:
                        p.by_sha.pop(s, None)  # merged: not pending any more
                    path.unlink()
                    bar.update(d + f)
                    run.results = {"embedded": n_done, "failed": n_failed}

                # shards a killed run finished but did not merge
                for path in sorted(folder.glob("*.npz")):
                    merge(path)
                todo = shards(p, shard_size)  # what the merged shards left
                if todo:
                    started_here = connect_ray(ray, address)
                    workers, per_worker = _pool(ray, num_workers, threads)
                    workers = min(workers, len(todo))
                    ray.data.DataContext.get_current().enable_progress_bars = False
                    ds = ray.data.from_items(
                        [{"shard": name, "items": json.dumps([(s, path.hex())
                                                              for s, path in part])}
                         for name, part in todo],
                        override_num_blocks=len(todo))  # one block per shard: spread out
                    out = ds.map_batches(
                        ShardEmbedder, batch_size=1,
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        num_cpus=per_worker,
                        fn_constructor_kwargs={
                            "backbone": backbone, "folder": str(folder),
                            "batch_size": batch_size, "threads": per_worker,
                            "max_pixels": max_pixels})
                    try:
                        for row in out.iter_rows():
                            merge(folder / f"{row['shard']}.npz")
                    except Exception as e:  # noqa: BLE001 - Ray wraps the worker's error
                        raise ImgatlasError(f"The Ray engine failed: {one_line(e)}") from e
        finally:
            bar.close()
            if started_here:
                ray.shutdown()
        run.results = summary(p, backbone, n_done, n_failed, time.perf_counter() - t0,
                              run.id, ["ray", "CPUExecutionProvider"])
    return run.results


def _pool(ray: Any, num_workers: int | None, threads: int | None) -> tuple[int, int]:
    """Actors and ONNX Runtime threads per actor, so that together they use the cluster's
    cores once: by default actors of 2 threads (ONNX Runtime scales well to 2 on this
    network; more actors rather than more threads keeps decoding parallel too)."""
    cores = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if num_workers is not None and num_workers < 1:
        raise ConfigError(f"num_workers must be an int >= 1. Got {num_workers} instead.")
    if threads is None:
        threads = max(1, cores // num_workers) if num_workers else min(2, cores)
    workers = num_workers or max(1, cores // threads)
    return workers, min(threads, cores)

