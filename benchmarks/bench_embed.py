"""Embedding throughput: model ceiling vs `imgatlas embed` end to end vs a naive loop.

Measured side by side in one process on the same images, repeated and interleaved so that
the shared machine's noise hits all contenders alike; the figures that matter are the ratios.

    python benchmarks/bench_embed.py [--n 640] [--repeats 3] [--sets clothing,rooms,cifar10]

(a) ceiling: ONNX Runtime on pre-decoded uint8 tensors, batch 32, no I/O.
(b) end to end: `imgatlas.api.embed` on a freshly scanned workspace (opens the model,
    decodes, infers, writes and records every row).
(c) naive: PIL open -> full decode -> resize -> PyTorch eager, batch 1.
Writes the section "Embedding throughput" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, class_balanced, preamble, write_section
from imgatlas import api
from imgatlas.backbones import create_backbone
from imgatlas.embed import Embedder

SETS = {  # name -> folder; the bundled sample stands in when the dev sets are absent
    "clothing": SHARED / "clothing",
    "rooms": SHARED / "rooms",
    "cifar10": SHARED / "cifar10",
    "sample": ROOT / "samples" / "clothing",
}


def ceiling(embedder: Embedder, pixels: np.ndarray, batch: int = 32) -> float:
    t = time.perf_counter()
    for i in range(0, len(pixels), batch):
        embedder.features(pixels[i:i + batch])
    return len(pixels) / (time.perf_counter() - t)


def pipeline(embedder: Embedder, files: list[Path]) -> float:
    """Decode + infer through the embedder's pipeline with an already warm model."""
    t = time.perf_counter()
    n = sum(len(keys) for keys, _, _ in embedder.iter_batches(enumerate(files)))
    return n / (time.perf_counter() - t)


def end_to_end(files: list[Path], tmp: Path, cache: Path, **kw) -> tuple[float, Path]:
    src = tmp / "src"
    if not src.exists():
        for k, f in enumerate(files):  # one flat folder: the same files for every repeat
            d = src / f.parent.name
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, d / f"{k:05d}{f.suffix}")
    ws = tmp / f"ws-{time.monotonic_ns()}"
    api.scan(src, ws)
    t = time.perf_counter()
    res = api.embed(ws, cache_dir=cache, **kw)
    dt = time.perf_counter() - t
    assert res["embedded"] == len(files), res
    return len(files) / dt, ws


def _torch_net():
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from imgatlas.backbones.efficientnet_lite import weights_file

    torch.set_num_threads(2)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
    return net.eval()


def naive(files: list[Path]) -> float:
    import torch
    from PIL import Image

    net = _torch_net()
    t = time.perf_counter()
    with torch.no_grad():
        for f in files:
            img = Image.open(f).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
            x = (torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() - 127) / 128
            net.extract_features(x).mean((2, 3))
    return len(files) / (time.perf_counter() - t)


def torch_reference(pixels: np.ndarray) -> np.ndarray:
    """PyTorch eager features of the very pixels imgatlas fed to ONNX Runtime."""
    import torch

    net = _torch_net()
    with torch.no_grad():
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - 127) / 128
        return net.extract_features(x).mean((2, 3)).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=640, help="images per set")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-n", type=int, default=48, help="images for the slow naive loop")
    ap.add_argument("--sets", default="clothing,rooms,cifar10")
    ap.add_argument("--variants", action="store_true", help="also sweep threads/batch/workers")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()

    tmp_root = Path(tempfile.mkdtemp(prefix="imgatlas-bench-"))
    cache = tmp_root / "cache"
    bb = create_backbone("efficientnet_lite0", cache_dir=cache)
    bb.onnx_path()  # export outside the timings
    rows, notes = [], []
    for name in args.sets.split(","):
        folder = SETS[name]
        if not folder.exists():
            notes.append(f"- {name}: {folder} absent, skipped")
            continue
        files = class_balanced(folder, args.n)
        sizes = {}
        from PIL import Image
        for f in files[:20]:
            with Image.open(f) as im:
                sizes[im.size] = sizes.get(im.size, 0) + 1
        typical = max(sizes, key=sizes.get)
        emb = Embedder(bb, batch_size=32, threads=2)
        pixels = np.stack([emb.decode(f) for f in files])
        emb.features(pixels[:64])  # warm-up
        ceil, e2e, ratio, pipe, pratio = [], [], [], [], []
        tmp = tmp_root / name
        for _ in range(args.repeats):
            c = ceiling(emb, pixels)
            p = pipeline(emb, files)
            e, ws = end_to_end(files, tmp, cache)
            c2 = ceiling(emb, pixels)
            ceil += [c, c2]
            e2e.append(e)
            pipe.append(p)
            ratio.append(e / ((c + c2) / 2))
            pratio.append(p / ((c + c2) / 2))
            print(f"  {name}: ceiling {c:.0f}/{c2:.0f} pipeline {p:.0f} end-to-end {e:.0f}",
                  flush=True)
        nv = naive(files[:args.naive_n])
        ref = torch_reference(pixels[:args.naive_n])
        _, X, rows_ = api.load_features(ws)
        by_name = {Path(r["path"]).name: x for r, x in zip(rows_, X, strict=True)}
        got = np.stack([by_name[f"{k:05d}{f.suffix}"] for k, f in enumerate(files[:args.naive_n])])
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        rows.append({
            "set": name, "n": len(files), "size": f"{typical[0]}x{typical[1]}",
            "ceiling": statistics.median(ceil), "e2e": statistics.median(e2e),
            "ratio": statistics.median(ratio), "naive": nv,
            "pipe": statistics.median(pipe), "pratio": statistics.median(pratio),
            "speedup": statistics.median(e2e) / nv, "cos_min": float(cos.min()),
        })
        print(rows[-1], flush=True)

    variants = []
    if args.variants and rows:
        name = rows[0]["set"]
        files = class_balanced(SETS[name], args.n)
        tmp = tmp_root / name
        grid = [("default (batch 32, 2 threads, 2 workers)", {}),
                ("batch 16", {"batch_size": 16}), ("batch 64", {"batch_size": 64}),
                ("1 decode worker", {"workers": 1}), ("3 decode workers", {"workers": 3}),
                ("1 ORT thread", {"threads": 1})]
        base = None
        for label, kw in grid:
            vals = [end_to_end(files, tmp, cache, **kw)[0] for _ in range(max(1, args.repeats - 1))]
            v = statistics.median(vals)
            base = base or v
            variants.append((label, v, v / base))
            print(label, v, flush=True)

    body = [*preamble("onnxruntime", "torch", "PIL", "cv2", "numpy"),
            "Ceiling = model alone on pre-decoded tensors (warm session). Pipeline = the "
            "embedder's decode/infer pipeline with the same warm session (steady state). "
            "Whole run = `imgatlas.api.embed` on a fresh workspace: loads the model, pays "
            "ONNX Runtime's warm-up (~0.3-1 s for the first batches), decodes, infers, writes "
            "and records every row. Naive = PIL full decode + PyTorch "
            f"eager, batch 1, on the first {args.naive_n} images. Cosine: the features "
            "`imgatlas embed` stored vs PyTorch eager on the same decoded pixels (the "
            "inference path's fidelity; the resize filter is compared in its own section). "
            f"Medians of {args.repeats} "
            "interleaved repeats; the ratio is per repeat against the ceilings measured just "
            "before and after it.", "",
            "| set | images | typical size | ceiling img/s | pipeline img/s | pipeline / ceiling "
            "| whole run img/s | whole run / ceiling | naive img/s | whole run / naive "
            "| min cosine vs PyTorch |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        body.append(f"| {r['set']} | {r['n']} | {r['size']} | {r['ceiling']:.0f} | "
                    f"{r['pipe']:.0f} | {r['pratio']:.0%} | "
                    f"{r['e2e']:.0f} | {r['ratio']:.0%} | {r['naive']:.1f} | "
                    f"{r['speedup']:.1f}x | {r['cos_min']:.7f} |")
    if variants:
        body += ["", f"Variants of `imgatlas embed` on {rows[0]['set']} (end-to-end img/s):", "",
                 "| variant | img/s | vs default |", "|---|---|---|"]
        body += [f"| {lbl} | {v:.0f} | {r:.2f} |" for lbl, v, r in variants]
    body += [""] + notes
    write_section(args.out, "Embedding throughput", "\n".join(body))
    shutil.rmtree(tmp_root, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
