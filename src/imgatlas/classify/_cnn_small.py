"""The studies' small CNN trained from scratch: the baseline that shows what transfer
learning is worth. Three conv-ReLU-maxpool blocks (32, 64, 128 filters) on 64x64 pixels,
Dense(128, ReLU) -> Dropout(0.5) -> softmax, L2 weight decay, flips and mild crops, Adam,
early stopping on the validation loss with the best weights restored. Exported to ONNX
(uint8 pixels in, ``features`` = the 128-d dense layer, ``logits``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._early_stop import classifier_epoch_row, train_with_early_stopping
from imgatlas._optional import import_torch
from imgatlas.classify._augment import random_resized_crop
from imgatlas.classify._heads import TemperatureScaler, softmax
from imgatlas.classify._split import Split
from imgatlas.evaluate.classification import classification_scores, expected_calibration_error

SIZE = 64
MAX_EPOCHS = 40
PATIENCE = 6
BATCH = 32


def build_cnn(torch: Any, n_classes: int) -> Any:
    nn = torch.nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers, c = [], 3
            for o in (32, 64, 128):
                layers += [nn.Conv2d(c, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
                c = o
            self.conv = nn.Sequential(*layers)
            self.dense = nn.Linear(128 * (SIZE // 8) ** 2, 128)
            self.dropout = nn.Dropout(0.5)
            self.out = nn.Linear(128, n_classes)

        def forward(self, x: Any) -> tuple[Any, Any]:
            f = torch.relu(self.dense(self.conv(x).flatten(1)))
            return self.out(self.dropout(f)), f

    return SmallCNN()


def train_cnn_small(ws: Any, ids: np.ndarray, y: np.ndarray, classes: list[str], split: Split,
                    *, seed: int, epochs: int | None, progress: bool, workdir: Path
                    ) -> dict[str, Any]:
    torch = import_torch("the small CNN (--mode cnn-small)")
    from imgatlas.backbones import export_onnx
    from imgatlas.decode import decode_rgb

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    paths = {r.id: r.path for r in ws.images()}
    big = np.stack([decode_rgb(paths[int(i)], (SIZE + SIZE // 4,) * 2) for i in ids])
    clean = np.stack([decode_rgb(paths[int(i)], (SIZE, SIZE)) for i in ids])
    yi = np.array([classes.index(c) for c in y])
    counts = np.bincount(yi[split.train], minlength=len(classes)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, len(split.train) / (len(classes)
                                                                     * np.maximum(counts, 1)),
                                   0.0), dtype=torch.float32)
    net = build_cnn(torch, len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    F = torch.nn.functional

    def tensor(pixels: np.ndarray) -> Any:
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0

    x_val, y_val = tensor(clean[split.val]), torch.from_numpy(yi[split.val])
    max_epochs = epochs or MAX_EPOCHS
    def epoch_of_training(epoch: int) -> dict[str, Any]:
        net.train()
        order = rng.permutation(split.train)
        total = correct = 0.0
        for s in range(0, len(order), BATCH):
            b = order[s:s + BATCH]
            views = [random_resized_crop(big[r], (SIZE, SIZE), rng, scale=(0.6, 1.0))
                     for r in b]
            views = [v[:, ::-1] if rng.random() < 0.5 else v for v in views]
            x = tensor(np.ascontiguousarray(np.stack(views)))
            t = torch.from_numpy(yi[b])
            logits, _ = net(x)
            loss = F.cross_entropy(logits, t, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            correct += float((logits.argmax(1) == t).sum())
        net.eval()
        with torch.no_grad():
            zv, _ = net(x_val)
            val_loss = float(F.cross_entropy(zv, y_val, weight=weight))
            val_acc = float((zv.argmax(1) == y_val).float().mean())
        return classifier_epoch_row(epoch, total, correct, len(order), val_loss, val_acc)

    history, _ = train_with_early_stopping(net, epoch_of_training, max_epochs=max_epochs,
                                           patience=PATIENCE, min_delta=1e-4,
                                           desc="train cnn-small", progress=progress)
    net.eval()
    with torch.no_grad():
        logits = {p: net(tensor(clean[getattr(split, p)]))[0].numpy() for p in ("val", "test")}
        feats = net(tensor(clean))[1].numpy()
    ts = TemperatureScaler().fit(logits["val"], yi[split.val])
    yt = yi[split.test]
    scores = classification_scores(yt, logits["test"].argmax(1), classes,
                                   softmax(logits["test"] / ts.temperature_))
    scores["ece_uncalibrated"] = expected_calibration_error(softmax(logits["test"]), yt)
    scores["val_accuracy"] = float((logits["val"].argmax(1) == yi[split.val]).mean())

    class Pixels(torch.nn.Module):  # uint8 NHWC in, as every imgatlas ONNX model
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> tuple[Any, Any]:
            logits, f = self.net(x.permute(0, 3, 1, 2).float() / 255.0)
            return f, logits

    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir.parent / f".onnx-{workdir.name}.onnx"
    try:
        export_onnx(Pixels().eval(), torch.zeros((2, SIZE, SIZE, 3), dtype=torch.uint8), out,
                    ["features", "logits"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "kind": "cnn-small", "temperature": ts.temperature_, "metrics": scores,
        "preprocessing": {"name": "cnn-small", "input_size": [SIZE, SIZE], "mean": [0, 0, 0],
                          "std": [1, 1, 1], "interpolation": "bilinear", "resize": "squash",
                          "input_format": "uint8_nhwc", "feature_output": "features",
                          "dim": 128},
        "cnn_small": {"input": SIZE, "filters": [32, 64, 128], "dense": 128, "dropout": 0.5,
                      "weight_decay": 1e-4, "epochs_run": len(history),
                      "best_epoch": int(np.argmin([r["val_loss"] for r in history]) + 1),
                      "seconds": round(time.perf_counter() - t0, 1)},
        "_evidence_features": feats,
    }
    return {"meta": meta, "onnx": out, "history": history, "scores": scores,
            "test_probs": softmax(logits["test"] / ts.temperature_)}
