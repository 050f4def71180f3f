"""The line branch distilled on the collection's own photos (``index --sketch --adapt``).

A photo and its line map are two views of one object: the last blocks of a copy of the
photos' EfficientNet-Lite learn to send each photo's line map (augmented so that clean edges
look more like hand drawing: strokes dropped, a small affine warp, stroke width and margin
drawn at random) to where the frozen network sends the photo itself (cosine loss). No label,
no sketch. The trunk before the tuned blocks runs once in ONNX Runtime and its activations
are cached (as ``train --mode finetune`` does); only the tail trains, in PyTorch, on the CPU.
The tuned network is written as one ONNX graph into ``W/backbones/`` and embeds the photos'
line maps and every drawing from then on; the fitted map still runs on top of it.

Measured on the dev Sketchy split by classes (benchmarks/bench_sketch_distill.py): see
docs/guide/sketch.md. Early stopping here watches held-out photos' line maps (the cosine
loss on 10 % of the photos): a person's collection has no sketches to validate on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from imgatlas._early_stop import train_with_early_stopping
from imgatlas._progress import progress_bar
from imgatlas.backbones import Backbone, derived_path, reopen_derived
from imgatlas.errors import ConfigError
from imgatlas.sketch._drawing import normalise_lines
from imgatlas.sketch._lines import lines_image, photo_line_grey

TUNE_BLOCKS = 4  # the last four blocks + head conv, as fine-tuning
VIEWS = 2  # augmented line maps per photo beside the clean one
MAX_EPOCHS = 6
PATIENCE = 2
BATCH = 64
LEARNING_RATE = 1e-4
HOLD_OUT = 0.1  # photos whose line maps judge the epochs (at least 20)
RECIPE = "distill-v1"
MODEL_DIR = "backbones"
KIND = "lines"  # the derived backbone: efficientnet_lite0-lines-<fingerprint>.onnx


def augmented_lines(grey: np.ndarray, rng: np.random.Generator, size: int = 224
                    ) -> np.ndarray:
    """A clean line drawing (dark on white) made to look more drawn: a quarter of its
    strokes dropped, a small rotation, scale and shear, a random stroke width and margin
    (:func:`normalise_lines` thins and redraws the strokes)."""
    ink = (grey < 128).astype(np.uint8)
    n, comp = cv2.connectedComponents(ink, connectivity=8)
    if n > 3:
        drop = rng.random(n) < 0.25
        drop[0] = False
        ink[drop[comp]] = 0
    h, w = ink.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
    M[0, 1] += rng.uniform(-0.1, 0.1)
    ink = cv2.warpAffine(ink, M, (w, h), flags=cv2.INTER_NEAREST)
    out = np.where(ink > 0, 0, 255).astype(np.uint8)
    if not (out < 128).any():
        out = grey
    if not (out < 128).any():
        return lines_image(out, size)
    return normalise_lines(out, size, stroke=rng.uniform(1.5, 5), margin=rng.uniform(0.04, 0.16),
                           check=False)


def distilled_backbone(ws: Any, photos: Any, base: Backbone, *, detector: str, seed: int,
                       epochs: int = MAX_EPOCHS, views: int = VIEWS, refit: bool = False,
                       progress: bool = False) -> tuple[Backbone, dict[str, Any]]:
    """The line branch distilled on the photos of feature store ``photos`` (made by
    ``base``): an existing one is reused unless ``refit`` or the photos changed by more than
    ``defaults.REFIT_GROWTH`` since it was made; ``(backbone, what was done)``."""
    from imgatlas import defaults
    from imgatlas.backbones import VARIANTS

    if base.name not in VARIANTS or base.derived is not None:
        raise ConfigError(f"--adapt distils an EfficientNet-Lite's last blocks; the photos' "
                          f"features come from {base.name}. Embed with efficientnet_lite0 "
                          "first.")
    # the tail is trained in float from the fp32 weights, towards the photos' stored
    # features (int8 ones are at cosine ~0.995 to fp32)
    base = base.fp32 or base
    folder = ws.path / MODEL_DIR
    ids = photos.done_ids()
    if not refit:
        for meta_path in sorted(folder.glob(f"{base.name}-{KIND}-*.json"), reverse=True):
            meta = json.loads(meta_path.read_text())
            if meta.get("photo_store") != photos.key or meta.get("detector") != detector:
                continue
            had = np.asarray(meta["photo_ids"], dtype=np.int64)
            changed = len(np.setdiff1d(ids, had)) + len(np.setdiff1d(had, ids))
            if changed <= defaults.REFIT_GROWTH * max(1, len(had)):
                return reopen_derived(ws.path, base, KIND, meta["fingerprint"]), {
                    **meta["summary"], "reused": True}
    fp = hashlib.sha256(json.dumps([RECIPE, photos.key, detector, seed, epochs, views,
                                    ids.tolist()]).encode()).hexdigest()[:12]
    work = folder / f".distill-{fp}"
    summary = _distil(ws, photos, base, ids, work, detector=detector, seed=seed,
                      epochs=epochs, views=views, progress=progress)
    out = derived_path(ws.path, base.name, KIND, fp)
    os.replace(work / "model.onnx", out)
    meta = {"fingerprint": fp, "photo_store": photos.key, "detector": detector,
            "photo_ids": ids.tolist(), "summary": summary}
    tmp = folder / f".{out.stem}.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, folder / f"{out.stem}.json")
    shutil.rmtree(work, ignore_errors=True)
    return reopen_derived(ws.path, base, KIND, fp), summary


def _distil(ws: Any, photos: Any, base: Backbone, ids: np.ndarray, work: Path, *,
            detector: str, seed: int, epochs: int, views: int, progress: bool
            ) -> dict[str, Any]:
    """Cache the trunk's activations (resumable: kept in ``work``), train the tail with
    early stopping, write ``work/model.onnx``."""
    from imgatlas._optional import import_torch
    from imgatlas.backbones import VARIANTS, block_plan, build_graph, load_state_dict
    from imgatlas.backbones.efficientnet_lite import weights_file

    if len(ids) < 40:
        raise ConfigError(f"Distilling the line branch needs at least 40 photos; the "
                          f"collection has {len(ids)}.")
    torch = import_torch("distilling the line branch (index --sketch --adapt)")
    t0 = time.perf_counter()
    variant = VARIANTS[base.name]
    weights = load_state_dict(weights_file(base.name))
    start = len(block_plan(variant)) - TUNE_BLOCKS
    work.mkdir(parents=True, exist_ok=True)
    acts = _activations(ws, base, ids, work, weights, variant, start, detector, seed, views,
                        progress)
    _, P = photos.read(ids)
    tail, history, before, best, held = fit_tail(torch, weights, variant, start, acts,
                                                 np.asarray(P, np.float32), seed=seed,
                                                 epochs=epochs, progress=progress)
    tuned = {**weights, **tail.state_arrays()}
    build_graph(tuned, variant, work / "model.onnx", name=f"{base.name}-{KIND}")
    return {"photos": int(len(ids)), "held_out": int(len(held)), "views": views,
            "tuned_blocks": TUNE_BLOCKS, "epochs_run": len(history),
            "val_loss_before": round(before, 5), "val_loss": round(best, 5),
            "history": history, "seconds": round(time.perf_counter() - t0, 1),
            "seconds_per_1000_photos": round((time.perf_counter() - t0) * 1000 / len(ids), 1)}


def fit_tail(torch: Any, weights: dict[str, np.ndarray], variant: Any, start: int,
             acts: np.ndarray, P: np.ndarray, *, seed: int, epochs: int = MAX_EPOCHS,
             progress: bool = False) -> tuple[Any, list[dict[str, Any]], float, float,
                                              np.ndarray]:
    """Train the tail (blocks ``start``.. and the head conv) on ``acts`` (``(n, 1 + views,
    C, H, W)``: each photo's line maps through the trunk) towards ``P`` (the photos'
    features), early stopping on held-out photos' clean line maps. ``(tail, history,
    held-out loss before, best held-out loss, held-out rows)``."""
    from imgatlas.classify import build_tail

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(P)
    held = rng.permutation(n)[:max(20, int(HOLD_OUT * n))]
    train = np.setdiff1d(np.arange(n), held)
    X = acts[train].reshape(-1, *acts.shape[2:])  # every view of the training photos
    T = torch.from_numpy(np.repeat(P[train], acts.shape[1], axis=0))
    Xv = acts[held, 0]
    Tv = torch.from_numpy(P[held])
    tail = build_tail(torch, weights, variant, start, 1,
                      (np.zeros((1, 1280), np.float32), np.zeros(1, np.float32)))
    params = [p for name, p in tail.named_parameters() if not name.startswith("fc.")]
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=1e-4)
    cos = torch.nn.functional.cosine_similarity
    gen = np.random.default_rng(seed + 1)

    def loss_on(A: np.ndarray, target: Any) -> float:
        tail.eval()
        with torch.no_grad():
            f = torch.cat([tail.features(torch.from_numpy(A[s:s + 256].astype(np.float32)))
                           for s in range(0, len(A), 256)])
        return float((1 - cos(f, target)).mean())

    def epoch_of_training(epoch: int) -> dict[str, Any]:
        tail.train()
        order = gen.permutation(len(X))
        total = 0.0
        for s in range(0, len(order), BATCH):
            b = np.sort(order[s:s + BATCH])
            f = tail.features(torch.from_numpy(X[b].astype(np.float32)))
            loss = (1 - cos(f, T[b])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        return {"epoch": epoch, "train_loss": round(total / len(X), 5),
                "val_loss": round(loss_on(Xv, Tv), 5)}

    before = loss_on(Xv, Tv)
    history, best = train_with_early_stopping(
        tail, epoch_of_training, max_epochs=epochs, patience=PATIENCE, min_delta=1e-4,
        desc="distil the line branch", progress=progress, show=("train_loss", "val_loss"))
    tail.eval()
    return tail, history, before, best, held


def _activations(ws: Any, base: Backbone, ids: np.ndarray, work: Path, weights: dict,
                 variant: Any, start: int, detector: str, seed: int, views: int,
                 progress: bool) -> np.ndarray:
    """``(n, 1 + views, C, H, W)`` float16: the trunk's output on each photo's clean line map
    and its augmented views. Kept in ``work`` in chunks, so a killed run resumes."""
    import onnxruntime as ort

    from imgatlas.backbones import build_graph

    trunk = work / "trunk.onnx"
    if not trunk.exists():
        build_graph(weights, variant, work / "trunk.tmp.onnx", extra_outputs=(start - 1,),
                    name=base.name)
        os.replace(work / "trunk.tmp.onnx", trunk)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(trunk), so, providers=["CPUExecutionProvider"])
    output = f"block{start - 1}"
    paths = {r.id: r.path for r in ws.images()}
    size = base.cfg.input_size[0]
    chunk = 64
    parts = []
    bar = progress_bar(total=len(ids), desc="distil: line maps through the trunk",
                       unit="photo", enable=progress)
    for c, s in enumerate(range(0, len(ids), chunk)):
        f = work / f"acts-{c:05d}.npy"
        if f.exists():
            parts.append(np.load(f))
            bar.update(min(chunk, len(ids) - s))
            continue
        rng = np.random.default_rng([seed, c])
        images = []
        for i in ids[s:s + chunk]:
            grey = photo_line_grey(paths[int(i)], detector, None)
            images.append(lines_image(grey, size))
            images += [augmented_lines(grey, rng, size) for _ in range(views)]
        out = []
        for b in range(0, len(images), 32):
            (a,) = sess.run([output], {"pixels": np.stack(images[b:b + 32])})
            out.append(a.astype(np.float16))
        A = np.concatenate(out)
        A = A.reshape(-1, 1 + views, *A.shape[1:])
        np.save(work / f".acts-{c:05d}.tmp.npy", A)
        os.replace(work / f".acts-{c:05d}.tmp.npy", f)
        parts.append(A)
        bar.update(len(A))
    bar.close()
    return np.concatenate(parts)
