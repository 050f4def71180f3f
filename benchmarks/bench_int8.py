"""int8 inference against fp32, side by side: model-only speed, feature cosine, clustering
ACC and retrieval mAP on the dev sets.

1. Recipes (the default backbone, calibrated on 128 photos of two dev sets, features of
   other sets' images compared to fp32): every layer int8 (min/max or percentile
   calibration), only the stem in float, and what imgatlas does: the convolutions with an
   output of at least a quarter of the input's side in float.
2. Speed: fp32 and the int8 graph on the same uint8 batch, interleaved repetitions, best of
   each, one session per graph with the same threads; the ratio is what is claimed.
3. Per dev set: `imgatlas embed --precision int8` (calibrated on the images shipped with
   imgatlas; before that, on the set itself) next to the fp32 store bench_cluster.py leaves
   in benchmarks/_work/<set>; cosine mean / min, k-means ACC on the default reduction
   (3 seeds) and leave-one-out mAP of the exact float index (1,000 queries).

    python benchmarks/bench_int8.py [--sets rooms,clothing,...] [--threads N]

Labels only score. Writes "int8 inference" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api
from imgatlas.backbones import create_backbone
from imgatlas.backbones._quantize import int8_backbone, quantize_onnx
from imgatlas.cluster import KMeansClusterer
from imgatlas.defaults import REDUCE
from imgatlas.embed import Embedder
from imgatlas.evaluate import cluster_accuracy
from imgatlas.index import CodeIndex, retrieval_scores
from imgatlas.reduce import make_reducer
from imgatlas.store import Workspace

WORK = ROOT / "benchmarks" / "_work"
CACHE = WORK / "cache"
SETS = ["rooms", "clothing", "imagenette", "cifar10", "fashion-mnist"]


def _files(name: str, n: int, seed: int) -> list[str]:
    files = sorted(glob.glob(str(SHARED / name / "*" / "*")))
    rng = np.random.default_rng(seed)
    return [files[i] for i in sorted(rng.choice(len(files), min(n, len(files)),
                                                replace=False))]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def recipes(threads: int) -> tuple[list[str], Path]:
    """Cosine to fp32 of each recipe; returns table lines and the default recipe's graph."""
    bb = create_backbone("efficientnet_lite0", cache_dir=CACHE)
    emb = Embedder(bb)
    cal = np.stack([emb.decode(f) for f in _files("rooms", 64, 0) + _files("clothing", 64, 0)])
    # the hard case: small images upscaled (CIFAR-10), against photos (Imagenette)
    test = np.stack([emb.decode(f) for f in _files("imagenette", 100, 1)
                     + _files("cifar10", 100, 1)])
    ref = Embedder(bb, threads=threads).features(test)
    import onnx

    convs = [i for i, n in enumerate(onnx.load(str(bb.onnx_path())).graph.node)
             if n.op_type == "Conv"]
    out = Path(tempfile.mkdtemp())
    rows = [("min/max, every layer int8", "minmax", ()),
            ("percentile, every layer int8", "percentile", ()),
            ("min/max, only the stem in float", "minmax", (f"conv{convs[0]}",)),
            ("**min/max, convolutions with an output >= 1/4 of the input side in float "
             "(imgatlas)**", "minmax", None)]
    lines = ["| recipe | cosine mean | cosine min | calibration s |", "|---|---:|---:|---:|"]
    for i, (label, method, keep) in enumerate(rows):
        path = out / f"r{i}.onnx"
        t = time.perf_counter()
        quantize_onnx(bb.onnx_path(), path, cal, method=method, keep_float=keep)
        secs = time.perf_counter() - t
        c = _cosine(ref, Embedder(int8_backbone(bb, path, f"r{i}"), threads=threads)
                    .features(test))
        lines.append(f"| {label} | {c.mean():.4f} | {c.min():.4f} | {secs:.0f} |")
        print(lines[-1], flush=True)
    return lines, {"every layer int8": out / "r0.onnx", "imgatlas recipe": out / "r3.onnx"}


def speed(graphs: dict[str, Path], threads: int, reps: int = 7) -> list[str]:
    bb = create_backbone("efficientnet_lite0", cache_dir=CACHE)
    sessions = {"fp32": bb.session("cpu", threads)}
    sessions.update({k: int8_backbone(bb, p, k).session("cpu", threads)
                     for k, p in graphs.items()})
    x = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    best: dict[str, float] = {}
    for s in sessions.values():
        s.run(None, {"pixels": x})
    for _ in range(reps):
        for key, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"pixels": x})
            best[key] = min(best.get(key, 1e9), time.perf_counter() - t)
    rate = {k: 32 / v for k, v in best.items()}
    cells = ", ".join(f"{k} {rate[k]:.0f} img/s (**{rate[k] / rate['fp32']:.2f}x**)"
                      for k in graphs)
    return [f"Model-only, batch 32, {threads} threads, best of {reps} interleaved runs: "
            f"fp32 {rate['fp32']:.0f} img/s, {cells}."]


def kmeans_acc_per_seed(Z: np.ndarray, y: np.ndarray, k: int, seeds: int) -> np.ndarray:
    """k-means ACC on the default reduction for seeds ``0..seeds-1``."""
    return np.array([cluster_accuracy(y, KMeansClusterer(k, random_state=s).fit(
        make_reducer(REDUCE, random_state=s).fit_transform(Z)).labels_)
        for s in range(seeds)])


def kmeans_acc(Z: np.ndarray, y: np.ndarray, k: int, seeds: int) -> float:
    """k-means ACC on the default reduction, the mean of ``seeds`` seeds."""
    return float(kmeans_acc_per_seed(Z, y, k, seeds).mean())


def noisy_copy(X: np.ndarray, cosine: float, seed: int = 0) -> np.ndarray:
    """``X`` (unit length) plus isotropic noise that leaves a mean cosine of ``cosine``: a
    control telling a perturbation of that size (k-means moving to another local optimum)
    from what int8 does."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    E = np.random.default_rng(seed).normal(size=X.shape).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return Xn + np.sqrt(1 / cosine ** 2 - 1) * E


def loo_map(Z: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out mAP of the exact float index."""
    return retrieval_scores(CodeIndex("float").fit(Z), Z, y, latency_queries=1)["map"]


def per_set(name: str, seeds: int = 3) -> str:
    ws = WORK / name
    res = api.embed(ws, cache_dir=CACHE, precision="int8")
    fp32 = api.embed(ws, cache_dir=CACHE, precision="fp32")  # done already; names the store
    with Workspace.open(ws) as w:
        stores = {s.key: s for s in w.feature_stores()}
        ids, X = stores[fp32["store"]].read()
        ids8, X8 = stores[res["store"]].read()
        labels = w.display_and_label()
    assert (ids == ids8).all()
    y = np.array([labels[i][1] for i in ids.tolist()])
    c = _cosine(X, X8)
    k = len(set(y))
    noisy = noisy_copy(X, float(c.mean()))
    acc = {key: kmeans_acc(Z, y, k, seeds)
           for key, Z in (("fp32", X), ("int8", X8), ("noise", noisy))}
    mAP = {key: loo_map(Z, y) for key, Z in (("fp32", X), ("int8", X8))}
    a32, a8, an = (acc[key] for key in ("fp32", "int8", "noise"))
    line = (f"| {name} | {len(ids):,} | {c.mean():.4f} | {c.min():.4f} | {a32:.3f} | {a8:.3f} "
            f"| {a8 - a32:+.3f} | {an - a32:+.3f} | {mAP['fp32']:.3f} | {mAP['int8']:.3f} "
            f"| {mAP['int8'] - mAP['fp32']:+.3f} |")
    print(line, flush=True)
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    lines = preamble("onnxruntime", "onnx") + [
        "Recipes: calibrated on 64 rooms + 64 clothing images, compared to fp32 on 100 "
        "Imagenette + 100 CIFAR-10 images (other sets than the calibration's):", ""]
    rec, graphs = recipes(threads)
    lines += rec + [""] + speed(graphs, threads) + [
        "", f"Per dev set (`embed --precision int8`, calibrated on 128 images of the set "
        f"itself; k-means on `{REDUCE}`, k = classes, {args.seeds} seeds; mAP leave-one-out, "
        "exact float index, 1,000 queries). Dev sets: tuned-on figures.", "",
        "ΔACC noise: fp32 features with isotropic noise of the same mean cosine (a control "
        "for how far any perturbation of that size moves k-means).", "",
        "| set | images | cosine mean | cosine min | ACC fp32 | ACC int8 | ΔACC | ΔACC noise "
        "| mAP fp32 | mAP int8 | ΔmAP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in args.sets.split(","):
        if (WORK / name / "catalog.sqlite").exists():
            lines.append(per_set(name, args.seeds))
    write_section(ROOT / "benchmarks" / "RESULTS.md", "int8 inference", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
