from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import Any

import numpy as np

from imgatlas._progress import progress_bar
from imgatlas.backbones._base import Backbone
from imgatlas.embed._embedder import Embedder
from imgatlas.errors import ConfigError
from imgatlas.store import FeatureStore, Status, Workspace, fingerprint

DTYPES = ("float32", "float16")


def store_key(backbone: Backbone, l2_normalize: bool, dtype: str) -> str:
    """Name of the feature store: backbone, its cfg, its weights, and the output options."""
    tag = hashlib.sha256(f"{backbone.cfg.fingerprint()}:{backbone.identity()}".encode()
                         ).hexdigest()
    q = "" if backbone.precision == "fp32" else f"-{backbone.precision}"
    return f"{backbone.name}-{tag[:10]}{q}{'-l2' if l2_normalize else ''}-{dtype}"


def embed_workspace(
    ws: Workspace,
    backbone: Backbone,
    *,
    batch_size: int = 32,
    device: str = "auto",
    threads: int | None = None,
    workers: int = 2,
    l2_normalize: bool = False,
    dtype: str = "float32",
    progress: bool = False,
    max_pixels: int | None = None,
    view: str | None = None,
    decoder: Any = None,
) -> dict[str, Any]:
    """Compute features for every usable image that the store does not hold yet.

    Resumable: each batch is written and recorded before the next one starts, so a killed
    run loses at most one batch. Exact duplicates (same sha256) are decoded once.

    ``view`` names another picture of each image than its pixels (e.g. ``lines-canny``, a
    photo's line map) and ``decoder`` makes it (path -> pixels at the input size); its
    vectors go to their own store (the key ends in the view).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1. Got {batch_size} instead.")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}. Got {dtype!r} instead.")
    t0 = time.perf_counter()
    key = store_key(backbone, l2_normalize, dtype) + (f"-{view}" if view else "")
    cfg = {"backbone": backbone.record(), "l2_normalize": l2_normalize}
    if view:
        cfg["view"] = view
    store = FeatureStore.ensure(ws, key, backbone.name, cfg, backbone.cfg.dim, dtype)
    done = set(store.done_ids().tolist())
    by_sha: dict[str, list[int]] = defaultdict(list)
    path_of: dict[str, bytes] = {}
    for img in ws.images(Status.OK):
        if img.id not in done:
            by_sha[img.sha256 or f"id{img.id}"].append(img.id)
            path_of.setdefault(img.sha256 or f"id{img.id}", img.path)
    # Pending images with the same content are decoded and inferred once (first id's path).
    pending_images = sum(len(v) for v in by_sha.values())

    embedder = Embedder(backbone, batch_size=batch_size, device=device, threads=threads,
                        workers=workers, max_pixels=max_pixels, decoder=decoder)
    params = {"backbone": backbone.record(), "store": key, "view": view,
              "batch_size": batch_size,
              "device": device, "threads": threads, "workers": workers,
              "l2_normalize": l2_normalize, "dtype": dtype}
    pending = sorted(i for ids in by_sha.values() for i in ids)
    n_done = n_failed = 0
    with ws.recording("embed", params, inputs=fingerprint(pending, key)) as run:
        bar = progress_bar(total=pending_images, desc=f"embed {backbone.name}", unit="img",
                           enable=progress)
        try:
            with store.open_writer(ws.max_image_id()) as writer:
                for shas, X, failures in embedder.iter_batches(path_of.items()):
                    if l2_normalize and len(X):
                        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
                    ids = [i for s in shas for i in by_sha[s]]
                    rows = np.repeat(X, [len(by_sha[s]) for s in shas], axis=0)
                    if ids:
                        writer.write(np.asarray(ids), rows)
                    if failures:
                        ws.mark_decode_errors((i, reason) for s, reason in failures
                                              for i in by_sha[s])
                    n_failed += sum(len(by_sha[s]) for s, _ in failures)
                    n_done += len(ids)
                    bar.update(len(ids) + sum(len(by_sha[s]) for s, _ in failures))
                    # what is stored so far, should the run stop here
                    run.results = {"embedded": n_done, "failed": n_failed}
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        run.results = {
            "store": key, "backbone": backbone.name, "dim": backbone.cfg.dim,
            "embedded": n_done, "failed": n_failed, "already_done": len(done),
            "unique_decoded": len(path_of), "seconds": round(seconds, 3),
            "images_per_second": round(n_done / seconds, 1) if seconds > 0 else None,
            "providers": embedder.providers if n_done or n_failed else None, "run_id": run.id,
        }
    return run.results
