from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._progress import progress_bar
from imgatlas.backbones import Backbone
from imgatlas.embed._embedder import Embedder
from imgatlas.errors import ConfigError
from imgatlas.inspect import STATS_VERSION, pixel_stats
from imgatlas.names import ensure_tags
from imgatlas.store import FeatureStore, Status, Workspace, fingerprint

DTYPES = defaults.DTYPES


def store_key(backbone: Backbone, l2_normalize: bool, dtype: str) -> str:
    """Name of the feature store: backbone, its cfg, its weights, and the output options."""
    tag = hashlib.sha256(f"{backbone.cfg.fingerprint()}:{backbone.identity()}".encode()
                         ).hexdigest()
    q = "" if backbone.precision == "fp32" else f"-{backbone.precision}"
    # a store's key is a file name: hf:ORG/NAME becomes hf-ORG--NAME
    name = backbone.name.replace(":", "-").replace("/", "--")
    return f"{name}-{tag[:10]}{q}{'-l2' if l2_normalize else ''}-{dtype}"


@dataclass
class Plan:
    """What an embed run has to do: the store, and the pending images grouped by content
    (exact duplicates are decoded and inferred once, from the first id's path)."""

    key: str
    store: FeatureStore
    already_done: int
    by_sha: dict[str, list[int]]
    path_of: dict[str, bytes]

    @property
    def pending_images(self) -> int:
        return sum(len(v) for v in self.by_sha.values())

    def absorb(self, ws: Workspace, writer: Any, shas: list[str], X: np.ndarray,
               failures: list[tuple[str, str]], l2_normalize: bool,
               measures: list[Any] | None = None) -> tuple[int, int]:
        """Write one batch's vectors (and the pixel measures taken while decoding) to every
        image with that content and record its failures; returns ``(embedded, failed)``
        image counts. Contents no longer pending (an image removed since) are skipped."""
        keep = [j for j, s in enumerate(shas) if s in self.by_sha]
        measured = [measures[j] for j in keep] if measures else []
        shas, X = [shas[j] for j in keep], X[keep]
        stats = [(i, s, m.as_row()) for s, m in zip(shas, measured, strict=False)
                 if m is not None for i in self.by_sha[s]]
        if stats:
            ws.record_pixel_stats(STATS_VERSION, stats)
        if l2_normalize and len(X):
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        ids = [i for s in shas for i in self.by_sha[s]]
        if ids:
            writer.write(np.asarray(ids), np.repeat(X, [len(self.by_sha[s]) for s in shas],
                                                    axis=0))
        failures = [(s, r) for s, r in failures if s in self.by_sha]
        if failures:
            ws.mark_decode_errors((i, reason) for s, reason in failures
                                  for i in self.by_sha[s])
        return len(ids), sum(len(self.by_sha[s]) for s, _ in failures)


def plan(ws: Workspace, backbone: Backbone, *, l2_normalize: bool = False,
         dtype: str = "float32", view: str | None = None) -> Plan:
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}. Got {dtype!r} instead.")
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
    return Plan(key, store, len(done), dict(by_sha), path_of)


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
    measure_pixels: bool = True,
) -> dict[str, Any]:
    """Compute features for every usable image that the store does not hold yet.

    Resumable: each batch is written and recorded before the next one starts, so a killed
    run loses at most one batch. Exact duplicates (same sha256) are decoded once.

    ``view`` names another picture of each image than its pixels (e.g. ``lines-canny``, a
    photo's line map) and ``decoder`` makes it (path -> pixels at the input size); its
    vectors go to their own store (the key ends in the view).

    ``measure_pixels``: while each picture is decoded, also take the measures the inspect
    stage needs (perceptual hash, focus, exposure; about 1.5 ms an image in the decode
    threads) for images that lack them, so that inspect need not decode again.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1. Got {batch_size} instead.")
    t0 = time.perf_counter()
    p = plan(ws, backbone, l2_normalize=l2_normalize, dtype=dtype, view=view)
    measure = None
    if measure_pixels and view is None:
        measured = set(ws.measured_ids(STATS_VERSION).tolist())
        if any(i not in measured for ids in p.by_sha.values() for i in ids):
            measure = pixel_stats
    embedder = Embedder(backbone, batch_size=batch_size, device=device, threads=threads,
                        workers=workers, max_pixels=max_pixels, decoder=decoder,
                        measure=measure)
    params = {"backbone": backbone.record(), "store": p.key, "view": view,
              "batch_size": batch_size, "engine": "local",
              "device": device, "threads": threads, "workers": workers,
              "l2_normalize": l2_normalize, "dtype": dtype}
    pending = sorted(i for ids in p.by_sha.values() for i in ids)
    n_done = n_failed = 0
    with ws.recording("embed", params, inputs=fingerprint(pending, p.key)) as run:
        bar = progress_bar(total=p.pending_images, desc=f"embed {backbone.name}", unit="img",
                           enable=progress)
        try:
            with p.store.open_writer(ws.max_image_id()) as writer:
                for shas, X, failures, measures in embedder.iter_batches(p.path_of.items()):
                    d, f = p.absorb(ws, writer, shas, X, failures, l2_normalize, measures)
                    n_done, n_failed = n_done + d, n_failed + f
                    bar.update(d + f)
                    # what is stored so far, should the run stop here
                    run.results = {"embedded": n_done, "failed": n_failed}
        finally:
            bar.close()
        tagged = ensure_tags(ws, p.store) if view is None else 0
        run.results = summary(p, backbone, n_done, n_failed, time.perf_counter() - t0,
                              run.id, embedder.providers if n_done or n_failed else None)
        run.results["tagged"] = tagged
    return run.results


def summary(p: Plan, backbone: Backbone, n_done: int, n_failed: int, seconds: float,
            run_id: int, providers: list[str] | None) -> dict[str, Any]:
    return {
        "store": p.key, "backbone": backbone.name, "precision": backbone.precision,
        "dim": backbone.cfg.dim, "embedded": n_done, "failed": n_failed,
        "already_done": p.already_done,
        "unique_decoded": len(p.path_of), "seconds": round(seconds, 3),
        "images_per_second": round(n_done / seconds, 1) if seconds > 0 else None,
        "providers": providers, "run_id": run_id,
    }
