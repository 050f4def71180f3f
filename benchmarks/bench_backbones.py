"""Backbone graphs side by side: the hand-written ONNX graph (no PyTorch) against the one
``torch.onnx.export`` wrote before, and the cost of the larger EfficientNet-Lite variants.

Model-only throughput on the same pre-decoded real photos, batch 32, 2 threads, repeats
interleaved so the shared machine's noise hits every contender alike; the ratio to the
default graph is per repeat. Fidelity: cosine between the two Lite0 graphs' features.

    python benchmarks/bench_backbones.py [--n 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, class_balanced, preamble, write_section
from imgatlas.backbones import create_backbone
from imgatlas.backbones._base import Backbone
from imgatlas.embed import Embedder


def torch_export(cache: Path) -> Backbone | None:
    """Lite0 exported through PyTorch as imgatlas did before (needs the train extra and
    efficientnet-lite-pytorch); None when they are absent."""
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return None
    from imgatlas.backbones._export import export_onnx, pixel_input_wrapper
    from imgatlas.backbones.efficientnet_lite import default_cfgs, weights_file

    cfg = default_cfgs["efficientnet_lite0"]
    out = cache / "lite0-torch-export.onnx"
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
    net.eval()

    def forward(n, x):
        f = n.extract_features(x).mean((2, 3))
        return f, n._fc(f)

    export_onnx(pixel_input_wrapper(net, forward, cfg.mean, cfg.std),
                torch.zeros((2, 224, 224, 3), dtype=torch.uint8), out, ["features", "logits"])
    return Backbone(cfg, out)


def rate(embedder: Embedder, pixels: np.ndarray, batch: int = 32) -> float:
    embedder.features(pixels[:batch])  # warm
    t = time.perf_counter()
    for i in range(0, len(pixels), batch):
        embedder.features(pixels[i:i + batch])
    return len(pixels) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    folder = SHARED / "clothing"
    if not folder.exists():
        folder = ROOT / "samples" / "clothing"
    files = class_balanced(folder, args.n)
    cache = Path(tempfile.mkdtemp(prefix="imgatlas-bb-"))
    contenders: dict[str, Embedder] = {}
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        try:
            contenders[name] = Embedder(create_backbone(name, cache_dir=cache), threads=2)
        except Exception as e:  # noqa: BLE001 - a missing weight package: say so, go on
            print(f"skipping {name}: {e}")
    old = torch_export(cache)
    if old is not None:
        contenders["efficientnet_lite0 (torch.onnx.export)"] = Embedder(old, threads=2)
    pixels = {name: np.stack([e.decode(f) for f in files]) for name, e in contenders.items()}
    rates: dict[str, list[float]] = {n: [] for n in contenders}
    ratios: dict[str, list[float]] = {n: [] for n in contenders}
    for _ in range(args.repeats):
        got = {name: rate(e, pixels[name]) for name, e in contenders.items()}
        for name, r in got.items():
            rates[name].append(r)
            ratios[name].append(r / got["efficientnet_lite0"])
    lines = preamble("onnxruntime", "numpy") + [
        f"{len(files)} clothing photos, decoded once per input size; model only, batch 32, "
        f"2 threads; medians of {args.repeats} interleaved repeats.", "",
        "| graph | input | img/s | vs default graph (per repeat) |", "|---|---|---:|---:|"]
    for name, e in contenders.items():
        size = e.backbone.cfg.input_size[0]
        lines.append(f"| {name} | {size} px | {statistics.median(rates[name]):.0f} | "
                     f"{statistics.median(ratios[name]):.2f} |")
    if old is not None:
        a = contenders["efficientnet_lite0"].features(pixels["efficientnet_lite0"][:64])
        b = contenders["efficientnet_lite0 (torch.onnx.export)"].features(
            pixels["efficientnet_lite0"][:64])
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        lines += ["", f"Hand-written Lite0 graph vs the torch export on 64 photos: min cosine "
                      f"{cos.min():.7f}, max abs difference {np.abs(a - b).max():.1e}."]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Backbone graphs", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
