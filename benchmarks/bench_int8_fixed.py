"""int8 calibrated once on a fixed set (the bundled CC0 sample) against int8 calibrated on each
collection (what `embed --precision int8` does today) and fp32, on every dev set.

The question of the first-run issue: with a calibration that does not depend on the
collection, int8 features would be the same for an image whatever collection it is in (a
classifier trained on one workspace could serve another), so int8 could be the default, if
the quality figures hold. Per dev set: cosine to fp32 (mean, min), k-means ACC on the default
reduction (k = classes, 3 seeds) and leave-one-out mAP of the exact float index.

    python benchmarks/bench_int8_fixed.py [--sets rooms,clothing,...] [--seeds 3]

Writes "int8 with a fixed calibration (dev sets)" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, preamble, write_section
from bench_int8 import CACHE, _cosine, kmeans_acc, loo_map
from imgatlas import api
from imgatlas.backbones import create_backbone, int8_backbone, quantize_onnx
from imgatlas.embed import Embedder
from imgatlas.store import Workspace

SETS = ["rooms", "clothing", "imagenette", "cifar10", "fashion-mnist"]
SAMPLE = ROOT / "samples" / "clothing"


def fixed_graph(out: Path) -> tuple[Path, int, float]:
    bb = create_backbone("efficientnet_lite0", cache_dir=CACHE)
    emb = Embedder(bb)
    files = sorted(str(p) for p in SAMPLE.rglob("*.jpg"))
    t = time.perf_counter()
    quantize_onnx(bb.onnx_path(), out, np.stack([emb.decode(f) for f in files]))
    return out, len(files), time.perf_counter() - t


def one_set(name: str, graph: Path, tmp: Path, seeds: int) -> str:
    ws = tmp / name
    api.scan(SHARED / name, ws, labels_from_folders=True)
    fp32 = api.embed(ws, cache_dir=CACHE)
    own = api.embed(ws, cache_dir=CACHE, precision="int8")
    with Workspace.open(ws) as w:
        stores = {s.key: s for s in w.feature_stores()}
        ids, X = stores[fp32["store"]].read()
        ids8, X8 = stores[own["store"]].read()
        info = w.display_and_label()
        paths = {r.id: r.path for r in w.images()}
    assert (ids == ids8).all()
    bb = create_backbone("efficientnet_lite0", cache_dir=CACHE)
    Xf = Embedder(int8_backbone(bb, graph, "bundled")).embed_files(
        [paths[int(i)] for i in ids])
    y = np.array([info[int(i)][1] for i in ids])
    k = len(set(y))
    spaces = {"fp32": X, "int8, own calibration": X8, "int8, fixed calibration": Xf}
    acc = {key: kmeans_acc(Z, y, k, seeds) for key, Z in spaces.items()}
    mAP = {key: loo_map(Z, y) for key, Z in spaces.items()}
    c_own, c_fix = _cosine(X, X8), _cosine(X, Xf)
    line = (f"| {name} | {len(ids):,} | {c_own.mean():.4f} / {c_own.min():.4f} | "
            f"{c_fix.mean():.4f} / {c_fix.min():.4f} | {acc['fp32']:.3f} | "
            f"{acc['int8, own calibration']:.3f} | {acc['int8, fixed calibration']:.3f} | "
            f"{mAP['fp32']:.3f} | {mAP['int8, own calibration']:.3f} | "
            f"{mAP['int8, fixed calibration']:.3f} |")
    print(line, flush=True)
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        graph, n_cal, secs = fixed_graph(Path(tmp) / "fixed.onnx")
        rows = [one_set(s, graph, Path(tmp), args.seeds) for s in args.sets.split(",")]
    lines = preamble("onnxruntime", "sklearn") + [
        f"The default backbone quantised by imgatlas's recipe, calibrated once on the bundled "
        f"sample ({n_cal} CC0 clothing photos, `samples/clothing`; {secs:.0f} s), against the "
        "same recipe calibrated on each set itself (`embed --precision int8`: 128 of its own "
        "images) and fp32. Cosine to fp32 as mean / min; k-means ACC on the default reduction, "
        f"k = classes, mean of {args.seeds} seeds; mAP leave-one-out, exact float index. "
        "Dev sets.", "",
        "| set | images | cosine, own calibration | cosine, fixed | ACC fp32 | ACC int8 own | "
        "ACC int8 fixed | mAP fp32 | mAP int8 own | mAP int8 fixed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows]
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "benchmarks" / "RESULTS.md", "int8 with a fixed calibration (dev sets)",
                  body)


if __name__ == "__main__":
    main()
