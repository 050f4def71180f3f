"""Convolutional autoencoders trained on the collection, as a feature source.

Presets: the two architectures of the source studies and a stronger default.

- ``apparel``: 240x320x3 input, encoder Conv 32-16-8 (3x3, ReLU, 2x2 max-pool after each),
  decoder of up-sampling + Conv 8-16-32 -> 3 (sigmoid); code = the flattened 30x40x8 map.
- ``fashion``: 28x28 grey input, encoder Conv 16-8-8 with pooling (28 -> 14 -> 7 -> 4),
  mirror decoder; code = the flattened 4x4x8 map (128-d).
- ``default``: 64x64x3, four stride-2 Conv-BN-ReLU blocks 32-64-128-256, code = global
  average of the last map (256-d); transposed-conv decoder. Batch norm and a compact pooled
  code make it train faster and cluster better than the flattened maps.

The trained encoder is exported through the same ONNX path as every backbone (uint8 pixels
in, normalisation inside the graph) with a ``.json`` spec beside it, so
``imgatlas embed --backbone W/models/<name>.onnx`` uses it like any other backbone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._early_stop import train_with_early_stopping
from imgatlas._optional import import_torch
from imgatlas.backbones import export_onnx
from imgatlas.decode import decode_rgb
from imgatlas.errors import ConfigError, DecodeError


@dataclass(frozen=True)
class Preset:
    name: str
    size: tuple[int, int]  # (width, height)
    grey: bool


PRESETS = {
    "apparel": Preset("apparel", (320, 240), grey=False),
    "fashion": Preset("fashion", (28, 28), grey=True),
    "default": Preset("default", (64, 64), grey=False),
}


def build_autoencoder(preset: str) -> Any:
    """The ``torch.nn.Module`` of a preset, with ``encode(x)`` and ``forward(x)``."""
    torch = import_torch("training an autoencoder")
    nn = torch.nn
    if preset not in PRESETS:
        raise ConfigError(f"Unknown autoencoder preset {preset!r}; choose one of "
                          f"{', '.join(PRESETS)}.")
    channels = 1 if PRESETS[preset].grey else 3

    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]

    class AE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if preset == "default":
                enc, c = [], channels
                for o in (32, 64, 128, 256):
                    enc += [nn.Conv2d(c, o, 4, stride=2, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
                    c = o
                self.encoder = nn.Sequential(*enc)
                dec = []
                for i, o in ((256, 128), (128, 64), (64, 32)):
                    dec += [nn.ConvTranspose2d(i, o, 4, stride=2, padding=1),
                            nn.BatchNorm2d(o), nn.ReLU()]
                dec += [nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1), nn.Sigmoid()]
                self.decoder = nn.Sequential(*dec)
                self.pooled = True
            else:
                f = (32, 16, 8) if preset == "apparel" else (16, 8, 8)
                pad = preset == "fashion"  # 7 -> 4 needs ceil_mode
                self.encoder = nn.Sequential(
                    *conv(channels, f[0]), nn.MaxPool2d(2),
                    *conv(f[0], f[1]), nn.MaxPool2d(2),
                    *conv(f[1], f[2]), nn.MaxPool2d(2, ceil_mode=pad),
                )
                self.decoder = nn.Sequential(
                    *conv(f[2], f[2]), nn.Upsample(scale_factor=2),
                    *conv(f[2], f[1]), nn.Upsample(scale_factor=2),
                    *(conv(f[1], f[0]) if preset == "apparel"
                      else [nn.Conv2d(f[1], f[0], 3), nn.ReLU()]),  # 14 -> 12 ... see crop
                    nn.Upsample(scale_factor=2),
                    nn.Conv2d(f[0], channels, 3, padding=1), nn.Sigmoid(),
                )
                self.pooled = False

        def encode(self, x):
            z = self.encoder(x)
            return z.mean((2, 3)) if self.pooled else z.flatten(1)

        def forward(self, x):
            y = self.decoder(self.encoder(x))
            if y.shape[-2:] != x.shape[-2:]:  # fashion: 4 -> 8 -> 16 -> 14 -> 28
                y = torch.nn.functional.interpolate(y, size=x.shape[-2:])
            return y

    return AE()


def load_pixels(paths: list[bytes], preset: str, workers: int = 2) -> tuple[np.ndarray, list[int]]:
    """Decode ``paths`` at the preset's size; returns pixels and the indices that decoded."""
    from concurrent.futures import ThreadPoolExecutor

    size = PRESETS[preset].size

    def one(p):
        try:  # the same decode + resize the exported encoder's spec declares
            return decode_rgb(p, size, interpolation="bilinear")
        except DecodeError:
            return None

    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(one, paths))
    ok = [i for i, a in enumerate(arrays) if a is not None]
    return np.stack([arrays[i] for i in ok]), ok


def _to_input(torch: Any, pixels: np.ndarray, grey: bool) -> Any:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    return x.mean(1, keepdim=True) if grey else x


def train_autoencoder(
    pixels: np.ndarray, preset: str = "default", *, epochs: int = 30, batch_size: int = 64,
    lr: float = 1e-3, val_split: float = 0.1, patience: int = 5, seed: int = 0,
    device: str = "cpu", progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train on ``(n, H, W, 3)`` uint8 pixels with MSE, Adam, a validation split and early
    stopping on the validation loss; returns the best model (eval mode) and its history."""
    torch = import_torch("training an autoencoder")
    if not 0 < val_split < 1:
        raise ConfigError(f"val_split must be in (0, 1). Got {val_split} instead.")
    if len(pixels) < 4:
        raise ConfigError(f"Need at least 4 images to train an autoencoder, got {len(pixels)}.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pixels))
    n_val = max(1, int(round(val_split * len(pixels))))
    val_idx, tr_idx = order[:n_val], order[n_val:]
    grey = PRESETS[preset].grey
    model = build_autoencoder(preset).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_val = _to_input(torch, pixels[val_idx], grey).to(device)
    t0 = time.perf_counter()

    def epoch_of_training(epoch: int) -> dict[str, Any]:
        model.train()
        perm = rng.permutation(tr_idx)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            xb = _to_input(torch, pixels[np.sort(perm[i:i + batch_size])], grey).to(device)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), xb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            val = float(sum(torch.nn.functional.mse_loss(model(x_val[i:i + 256]),
                                                         x_val[i:i + 256], reduction="sum")
                            for i in range(0, len(x_val), 256)) / x_val.numel())
        return {"epoch": epoch, "train_loss": total / len(tr_idx), "val_loss": val}

    history, best = train_with_early_stopping(
        model, epoch_of_training, max_epochs=epochs, patience=patience, min_delta=1e-6,
        desc=f"train {preset} autoencoder", progress=progress, show=("train_loss", "val_loss"))
    model.eval().cpu()
    return model, {"history": history, "best_val_loss": best, "epochs_run": len(history),
                   "stopped_early": len(history) < epochs, "n_train": int(len(tr_idx)),
                   "n_val": int(n_val), "seconds": round(time.perf_counter() - t0, 2)}


def export_encoder(model: Any, preset: str, out: Path) -> Path:
    """Export the encoder as an imgatlas backbone: ``out`` (.onnx) plus ``out.json``."""
    torch = import_torch("training an autoencoder")
    p = PRESETS[preset]
    grey = p.grey

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ae = model

        def forward(self, x):  # uint8 NHWC pixels
            x = x.permute(0, 3, 1, 2).float() / 255.0
            if grey:
                x = x.mean(1, keepdim=True)
            return self.ae.encode(x)

    w, h = p.size
    enc = Encoder().eval()
    out = Path(out)
    export_onnx(enc, torch.zeros((2, h, w, 3), dtype=torch.uint8), out, ["features"])
    with torch.no_grad():
        dim = int(enc(torch.zeros((1, h, w, 3), dtype=torch.uint8)).shape[1])
    spec = {"name": out.stem, "input_size": [w, h], "mean": [0, 0, 0], "std": [1, 1, 1],
            "interpolation": "bilinear", "resize": "squash", "input_format": "uint8_nhwc",
            "feature_output": "features", "dim": dim}
    out.with_suffix(".json").write_text(json.dumps(spec, indent=2))
    return out


def train_workspace_autoencoder(ws: Any, preset: str = "default", *, epochs: int = 30,
                                batch_size: int = 64, val_split: float = 0.1,
                                patience: int = 5, max_images: int = 20_000, seed: int = 0,
                                device: str = "cpu", progress: bool = False
                                ) -> dict[str, Any]:
    """Train a preset on (a seeded sample of) the workspace's usable images; save the model
    and its exported encoder under ``W/models/``; record the run."""
    from imgatlas.store import Status, fingerprint

    if preset not in PRESETS:
        raise ConfigError(f"Unknown autoencoder preset {preset!r}; choose one of "
                          f"{', '.join(PRESETS)}.")
    images = ws.images(Status.OK)
    if len(images) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(images), max_images, False))
        images = [images[i] for i in keep]
    params = {"preset": preset, "epochs": epochs, "batch_size": batch_size,
              "val_split": val_split, "patience": patience, "max_images": max_images,
              "device": device}
    with ws.recording("train-autoencoder", params, seed=seed,
                      inputs=fingerprint([im.id for im in images])) as run:
        pixels, _ = load_pixels([im.path for im in images], preset)
        model, info = train_autoencoder(pixels, preset, epochs=epochs, batch_size=batch_size,
                                        val_split=val_split, patience=patience, seed=seed,
                                        device=device, progress=progress)
        models = ws.path / "models"
        models.mkdir(exist_ok=True)
        name = f"ae-{preset}-r{run.id}"
        torch = import_torch("training an autoencoder")
        torch.save(model.state_dict(), models / f"{name}.pt")
        onnx_path = export_encoder(model, preset, models / f"{name}.onnx")
        run.results = {**info, "run_id": run.id, "onnx": str(onnx_path),
                       "weights": str(models / f"{name}.pt"),
                       "dim": json.loads(onnx_path.with_suffix(".json").read_text())["dim"]}
    return run.results
