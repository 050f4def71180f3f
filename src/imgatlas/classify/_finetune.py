"""Partial fine-tuning of an EfficientNet-Lite backbone on a CPU, designed around the fact
that PyTorch eager runs the whole network at 11-41 images/s here.

1. The frozen trunk (every block before the tuned ones) runs once, in ONNX Runtime, on each
   training image's clean view and ``views`` augmented views (random resized crop, flip,
   colour jitter) and on the clean validation and test images; its activations are cached
   (float16).
2. Only the last ``tune_blocks`` blocks, the head convolution and a linear classifier train
   (PyTorch), from the cached activations: the classifier starts from the trained logistic
   head (linear probe, then fine-tune), batch-norm statistics stay frozen, class-weighted
   cross-entropy with label smoothing, AdamW with a cosine schedule, early stopping on the
   validation loss with the best weights restored.
3. The tuned weights go back into the checkpoint's state dict and the whole network is
   written as one ONNX graph (features + class logits) by the same builder as the
   backbone, so prediction runs in ONNX Runtime with no PyTorch.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._early_stop import classifier_epoch_row, train_with_early_stopping
from imgatlas._optional import import_torch
from imgatlas._progress import progress_bar
from imgatlas.classify._augment import augment
from imgatlas.classify._heads import TemperatureScaler, softmax
from imgatlas.classify._split import Split
from imgatlas.errors import ConfigError
from imgatlas.evaluate.classification import classification_scores, expected_calibration_error

TUNE_BLOCKS = 4  # the last four blocks (7x7 maps) + head conv; 2 and 8 views compared on
# validation (benchmarks/bench_classify.py --variants): 4 won on both dev sets
VIEWS = 4  # augmented views per training image, beside its clean view
MAX_EPOCHS = 12
PATIENCE = 3
BATCH = 64
LEARNING_RATE = 3e-4
LABEL_SMOOTHING = 0.1


def finetune(ws: Any, ids: np.ndarray, y: np.ndarray, classes: list[str], split: Split,
             store: Any, lp_head: Any, *, seed: int, epochs: int | None, progress: bool,
             cache_dir: Path | None, workdir: Path, tune_blocks: int = TUNE_BLOCKS,
             views: int = VIEWS) -> dict[str, Any]:
    torch = import_torch("fine-tuning (--mode finetune)")
    from imgatlas.backbones import VARIANTS, block_plan, build_graph, load_state_dict
    from imgatlas.backbones.efficientnet_lite import default_cfgs, weights_file
    from imgatlas.classify._heads import LogisticHead
    from imgatlas.classify._lite_torch import build_tail

    name = store.cfg["backbone"]["name"]
    if name not in VARIANTS or name not in default_cfgs:
        raise ConfigError(f"--mode finetune tunes an EfficientNet-Lite backbone; the features "
                          f"here come from {name!r}. Embed with efficientnet_lite0 first.")
    if not isinstance(lp_head, LogisticHead):  # LP-FT starts from a linear probe
        lp_head = LogisticHead().fit(*_xy(store, ids, y, split.train))
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    variant, cfg = VARIANTS[name], default_cfgs[name]
    weights = load_state_dict(weights_file(name))
    n_blocks = len(block_plan(variant))
    start = n_blocks - tune_blocks
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        trunk_path = workdir / "trunk.onnx"
        build_graph(weights, variant, trunk_path, extra_outputs=(start - 1,), name=name)
        rng = np.random.default_rng(seed)
        paths = {r.id: r.path for r in ws.images()}
        acts = _activations(trunk_path, f"block{start - 1}", [paths[int(i)] for i in ids],
                            split, cfg.input_size, views, rng, progress)
        cw = _class_weights(y[split.train], classes)
        tail = build_tail(torch, weights, variant, start, len(classes),
                          (lp_head.coef_, lp_head.intercept_))
        yi = np.array([classes.index(c) for c in y])
        history = _train(torch, tail, acts, yi, split, cw, seed, epochs or MAX_EPOCHS,
                         progress)
        tail.eval()
        with torch.no_grad():
            logits, feats = {}, {}
            for part in ("train", "val", "test"):
                z, f = _forward(torch, tail, acts[f"{part}_clean"])
                logits[part], feats[part] = z, f
        ts = TemperatureScaler().fit(logits["val"], yi[split.val])
        yt = yi[split.test]
        scores = classification_scores(yt, logits["test"].argmax(1), classes,
                                       softmax(logits["test"] / ts.temperature_))
        scores["ece_uncalibrated"] = expected_calibration_error(softmax(logits["test"]), yt)
        scores["val_accuracy"] = float((logits["val"].argmax(1) == yi[split.val]).mean())
        tuned = {**weights, **tail.state_arrays()}
        out = workdir / "model.onnx"
        W = tail.fc.weight.detach().numpy()
        b = tail.fc.bias.detach().numpy()
        build_graph(tuned, variant, out, name=f"{name}-finetuned", classifier=(W, b))
        _check_export(out, acts, logits)  # the exported graph gives the trained model's
        X_all = np.empty((len(ids), feats["train"].shape[1]), np.float32)
        for part in ("train", "val", "test"):
            X_all[getattr(split, part)] = feats[part]
        w, h = cfg.input_size
        meta = {
            "kind": "finetune", "temperature": ts.temperature_, "metrics": scores,
            "preprocessing": {"name": f"{name}-finetuned", "input_size": [w, h],
                              "mean": [0, 0, 0], "std": [1, 1, 1],
                              "interpolation": cfg.interpolation, "resize": cfg.resize,
                              "input_format": "uint8_nhwc", "feature_output": "features",
                              "dim": 1280},
            "finetune": {"backbone": name, "tuned_blocks": list(range(start, n_blocks)),
                         "views": views, "max_epochs": epochs or MAX_EPOCHS,
                         "patience": PATIENCE, "batch_size": BATCH,
                         "learning_rate": LEARNING_RATE, "label_smoothing": LABEL_SMOOTHING,
                         "epochs_run": len(history),
                         "best_epoch": int(np.argmin([r["val_loss"] for r in history]) + 1),
                         "seconds": round(time.perf_counter() - t0, 1)},
            "_evidence_features": X_all,
        }
        keep = workdir.parent / f".onnx-{workdir.name}.onnx"
        shutil.copyfile(out, keep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"meta": meta, "onnx": keep, "history": history, "scores": scores,
            "test_probs": softmax(logits["test"] / ts.temperature_)}


def _xy(store: Any, ids: np.ndarray, y: np.ndarray, rows: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
    _, X = store.read(ids[rows])
    return X, y[rows]


def _class_weights(y: np.ndarray, classes: list[str]) -> np.ndarray:
    counts = np.array([(y == c).sum() for c in classes], np.float64)
    return np.where(counts > 0, len(y) / (len(classes) * np.maximum(counts, 1)), 0.0)


def _activations(trunk: Path, output: str, paths: list[bytes], split: Split,
                 size: tuple[int, int], views: int, rng: np.random.Generator,
                 progress: bool) -> dict[str, np.ndarray]:
    """The trunk's activations: ``train_views`` (n_train, 1 + views, C, H, W) and the clean
    ``{train,val,test}_clean`` (n, C, H, W), float16."""
    import onnxruntime as ort

    from imgatlas.decode import decode_rgb

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(trunk), so, providers=["CPUExecutionProvider"])
    big = (size[0] * 2, size[1] * 2)  # crops are taken from a 2x image, then resized
    n_train = len(split.train)
    total = n_train * (1 + views) + len(split.val) + len(split.test)
    bar = progress_bar(total=total, desc="fine-tune: cache trunk activations", unit="view",
                       enable=progress)
    out: dict[str, list[np.ndarray]] = {"train_clean": [], "val_clean": [], "test_clean": [],
                                        "train_aug": []}

    def run(batch: list[np.ndarray]) -> np.ndarray:
        (a,) = sess.run([output], {"pixels": np.stack(batch)})
        bar.update(len(batch))
        return a.astype(np.float16)

    for part in ("train", "val", "test"):
        rows = getattr(split, part)
        for s in range(0, len(rows), 16):
            clean, aug = [], []
            for r in rows[s:s + 16]:
                clean.append(decode_rgb(paths[r], size))
                if part == "train":
                    img = decode_rgb(paths[r], big)
                    aug += [augment(img, size, rng) for _ in range(views)]
            out[f"{part}_clean"].append(run(clean))
            if aug:
                out["train_aug"].append(run(aug))
    bar.close()
    acts = {k: np.concatenate(v) if v else np.empty((0,)) for k, v in out.items()}
    a = acts.pop("train_aug")
    acts["train_views"] = np.concatenate(
        [acts["train_clean"][:, None], a.reshape(n_train, views, *a.shape[1:])], axis=1)
    return acts


def _forward(torch: Any, tail: Any, A: np.ndarray, batch: int = 256
             ) -> tuple[np.ndarray, np.ndarray]:
    Z, Fs = [], []
    for s in range(0, len(A), batch):
        z, f = tail(torch.from_numpy(A[s:s + batch].astype(np.float32)))
        Z.append(z.numpy())
        Fs.append(f.numpy())
    return np.concatenate(Z), np.concatenate(Fs)


def _train(torch: Any, tail: Any, acts: dict[str, np.ndarray], yi: np.ndarray, split: Split,
           cw: np.ndarray, seed: int, max_epochs: int, progress: bool) -> list[dict[str, Any]]:
    F = torch.nn.functional
    V = acts["train_views"]  # (n, 1 + views, C, H, W)
    n, v = V.shape[:2]
    flat = V.reshape(n * v, *V.shape[2:])
    y_flat = np.repeat(yi[split.train], v)
    weight = torch.tensor(cw, dtype=torch.float32)
    opt = torch.optim.AdamW(tail.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps = max_epochs * math.ceil(len(flat) / BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = np.random.default_rng(seed + 7)
    yv = torch.from_numpy(yi[split.val])
    def epoch_of_training(epoch: int) -> dict[str, Any]:
        tail.train()
        order = gen.permutation(len(flat))
        total = correct = 0.0
        for s in range(0, len(order), BATCH):
            b = np.sort(order[s:s + BATCH])
            x = torch.from_numpy(flat[b].astype(np.float32))
            t = torch.from_numpy(y_flat[b])
            logits, _ = tail(x)
            loss = F.cross_entropy(logits, t, weight=weight, label_smoothing=LABEL_SMOOTHING)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
            correct += float((logits.argmax(1) == t).sum())
        tail.eval()
        with torch.no_grad():
            zv, _ = _forward(torch, tail, acts["val_clean"])
            zt = torch.from_numpy(zv)
            val_loss = float(F.cross_entropy(zt, yv, weight=weight))
            val_acc = float((zt.argmax(1) == yv).float().mean())
        return classifier_epoch_row(epoch, total, correct, len(flat), val_loss, val_acc)

    history, _ = train_with_early_stopping(tail, epoch_of_training, max_epochs=max_epochs,
                                           patience=PATIENCE, min_delta=1e-4,
                                           desc="fine-tune", progress=progress)
    return history


def _check_export(onnx: Path, acts: dict[str, np.ndarray], logits: dict[str, np.ndarray]
                  ) -> None:
    """Nothing to check without pixels here; the graph builder is tested against PyTorch.
    Kept as the place to hook a check should the export path change."""
    if not onnx.is_file():
        raise RuntimeError(f"the fine-tuned model was not written to {onnx}")
