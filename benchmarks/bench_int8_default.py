"""int8 by default: fp32 against int8 on the calibration shipped with imgatlas (what `embed`
and `run` now use for the EfficientNet-Lite family), side by side on the dev sets, for every
quality figure the first-run issue names.

Per dev set (the set's images embedded both ways in one workspace):
- cosine of each image's int8 features to its fp32 ones (mean / min);
- k-means ACC on the default reduction, k = classes, ``--seeds`` seeds (10): mean of each,
  the paired difference (mean ± sd over seeds) and a control, fp32 plus isotropic noise of
  the same mean cosine (what a perturbation of that size does to k-means: a local optimum
  moving, not int8);
- leave-one-out mAP of the exact float index;
- the default head's accuracy (LogisticHead with its default parameters) trained on a
  stratified 70 % and scored on the other 30 %, 3 splits, on at most 3,000 images a set;
- ``--own``: the same figures with int8 calibrated on 128 of the set's own images (what
  `--precision int8` did before the shipped calibration).
k auto (``--k-auto``): the rule of `--k auto` on the six sets bench_k_auto.py uses and their
union, 3 seeds, on fp32, int8 and the noise control; a k within ±20 % of the classes counts
as found.
Sketch: dev Sketchy split by classes (15 searched, whose photos the map is fitted on and whose
sketches are never seen; 15 others give the sketch offset), the default path (map + offset
+ query expansion), ``--splits`` splits (4), photos and sketches embedded at each precision.

    python benchmarks/bench_int8_default.py [--sets rooms,clothing,...] [--seeds 10]
        [--splits 4] [--own] [--no-sketch] [--k-auto] [--no-write]

Labels only score. Writes "int8 by default: quality (dev sets)" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, preamble, write_section
from bench_int8 import CACHE, _cosine, kmeans_acc_per_seed, loo_map, noisy_copy
from imgatlas import api
from imgatlas.backbones import create_backbone, int8_backbone, quantize_onnx
from imgatlas.classify import LogisticHead
from imgatlas.embed import Embedder
from imgatlas.store import Workspace

SETS = ["rooms", "clothing", "imagenette", "cifar10", "fashion-mnist"]
HEAD_IMAGES = 3000
HEAD_SPLITS = 3


def head_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.model_selection import StratifiedShuffleSplit, train_test_split

    if len(y) > HEAD_IMAGES:
        keep, _ = train_test_split(np.arange(len(y)), train_size=HEAD_IMAGES, stratify=y,
                                   random_state=0)
        X, y = X[keep], y[keep]
    accs = []
    for tr, te in StratifiedShuffleSplit(HEAD_SPLITS, test_size=0.3,
                                         random_state=0).split(X, y):
        accs.append(float((LogisticHead().fit(X[tr], y[tr]).predict(X[te]) == y[te]).mean()))
    return float(np.mean(accs))


def own_calibration(ws: Path, ids: np.ndarray, paths: dict[int, str], tmp: Path) -> np.ndarray:
    """Features from int8 calibrated on 128 of the set's own images (the earlier recipe)."""
    bb = create_backbone("efficientnet_lite0", cache_dir=CACHE)
    emb = Embedder(bb)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(ids), min(128, len(ids)), replace=False)
    graph = tmp / f"{ws.name}-own.onnx"
    quantize_onnx(bb.onnx_path(), graph, np.stack([emb.decode(paths[int(ids[i])])
                                                   for i in pick]))
    return Embedder(int8_backbone(bb, graph, "own")).embed_files(
        [paths[int(i)] for i in ids])


def one_set(name: str, tmp: Path, seeds: int, own: bool) -> dict:
    ws = tmp / name
    api.scan(SHARED / name, ws, labels_from_folders=True)
    a = api.embed(ws, cache_dir=CACHE, precision="fp32")
    b = api.embed(ws, cache_dir=CACHE, precision="int8")
    with Workspace.open(ws) as w:
        stores = {s.key: s for s in w.feature_stores()}
        ids, X = stores[a["store"]].read()
        ids8, X8 = stores[b["store"]].read()
        info = w.display_and_label()
        paths = {r.id: r.path for r in w.images()}
    assert (ids == ids8).all()
    y = np.array([info[int(i)][1] for i in ids])
    k = len(set(y))
    c = _cosine(X, X8)
    spaces = {"fp32": X, "int8": X8, "noise": noisy_copy(X, float(c.mean()))}
    if own:
        spaces["own"] = own_calibration(ws, ids, paths, tmp)
    acc = {key: kmeans_acc_per_seed(Z, y, k, seeds) for key, Z in spaces.items()}
    out = {"set": name, "n": len(ids), "cos_mean": float(c.mean()), "cos_min": float(c.min()),
           "acc": {key: float(v.mean()) for key, v in acc.items()},
           "diff": acc["int8"] - acc["fp32"], "noise_diff": acc["noise"] - acc["fp32"],
           "map": {key: loo_map(Z, y) for key, Z in spaces.items() if key != "noise"},
           "head": {key: head_accuracy(Z, y) for key, Z in spaces.items() if key != "noise"}}
    if own:
        out["own_cos"] = float(_cosine(X, spaces["own"]).mean())
    print(out["set"], {k_: out[k_] for k_ in ("cos_mean", "acc", "map", "head")}, flush=True)
    shutil.rmtree(ws, ignore_errors=True)
    return out


def k_auto(tmp: Path, seeds: int) -> dict[str, dict[str, list[int]]]:
    """``--k auto``'s k per set (and the union) and seed, on fp32, int8 and the noise
    control."""
    from bench_k_auto import SETS as K_SETS
    from bench_k_auto import UNION
    from imgatlas import defaults
    from imgatlas.cluster._select import choose_k
    from imgatlas.reduce import make_reducer

    feats: dict[str, dict[str, np.ndarray]] = {}
    for name in K_SETS:
        ws = tmp / ("k-" + name.replace("/", "_"))
        api.scan(SHARED / name, ws, labels_from_folders=True)
        per = {}
        for precision in ("fp32", "int8"):
            store = api.embed(ws, cache_dir=CACHE, precision=precision)["store"]
            _, per[precision], rows = api.load_features(ws, features=store)
        per["noise"] = noisy_copy(per["fp32"], float(_cosine(per["fp32"], per["int8"]).mean()))
        per["y"] = np.array([f"{name}:{r['label']}" for r in rows])
        feats[name] = per
        shutil.rmtree(ws, ignore_errors=True)
    feats["union of 5"] = {key: np.concatenate([feats[d][key] for d in UNION])
                           for key in ("fp32", "int8", "noise", "y")}
    out: dict[str, dict[str, list[int]]] = {}
    for name, per in feats.items():
        out[name] = {"classes": [len(set(per["y"].tolist()))]}
        for key in ("fp32", "int8", "noise"):
            Z = make_reducer(defaults.REDUCE, random_state=0).fit_transform(
                per[key].astype(np.float32))
            out[name][key] = [choose_k(Z, "kmeans", None, s)["chosen_k"] for s in range(seeds)]
        print(name, out[name], flush=True)
    return out


def sketch_splits(splits: int, tmp: Path) -> dict[str, list[float]]:
    """Default sketch path mAP per split, photos embedded in fp32 and in int8."""
    import bench_sketch as bs
    from imgatlas.sketch._map import domain_shift

    classes = sorted(p.name for p in (bs.SKETCHY / "photo").iterdir())
    out: dict[str, list[float]] = {"fp32": [], "int8": []}
    for precision in out:
        root = tmp / f"sketch-{precision}"
        ws = bs.photo_workspace(root, classes, root / "ws", precision=precision)
        everything = bs.features_of(ws, bs.sketch_dir(root, classes))
        for split in range(splits):
            perm = list(np.random.default_rng(split).permutation(classes))
            train_cls, test_cls = sorted(perm[:15]), sorted(perm[15:])
            shift = domain_shift(everything["S"][np.isin(everything["s_cls"], train_cls)],
                                 everything["L"][np.isin(everything["p_cls"], train_cls)])
            sroot = tmp / f"split{split}-{precision}"
            sws = bs.photo_workspace(sroot, test_cls, sroot / "ws", precision=precision)
            bs.build(sws, shift=shift)
            out[precision].append(bs.evaluate(sws, bs.sketch_dir(sroot, test_cls))["map"])
            print(f"sketch split {split} {precision}: {out[precision][-1]:.3f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--own", action="store_true")
    ap.add_argument("--no-sketch", action="store_true")
    ap.add_argument("--k-auto", action="store_true", help="also --k auto on each precision")
    ap.add_argument("--no-sets", action="store_true", help="skip the per-set figures")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="imgatlas-int8-"))
    try:
        rows = [] if args.no_sets else [one_set(s, tmp, args.seeds, args.own)
                                        for s in args.sets.split(",")]
        sketch = None if args.no_sketch else sketch_splits(args.splits, tmp)
        ks = k_auto(tmp, 3) if args.k_auto else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    own = " | own: cosine, ACC, mAP, head" if args.own else ""
    lines = preamble("onnxruntime", "sklearn") + [
        "fp32 against int8 on the shipped calibration (`src/imgatlas/backbones/calibration`, "
        "120 CC0 photos, scripts/make_int8_calibration.py), default backbone, same images; "
        "dev sets (the calibration photos are not in them but come from the same source as "
        f"clothing's). {time.perf_counter() - t0:.0f} s."]
    if rows:
        lines += [
            "", f"ACC: k-means on the default reduction, k = classes, {args.seeds} seeds; Δ = "
            "int8 − fp32 paired by seed, mean ± sd; noise Δ: fp32 plus isotropic noise of the "
            "same mean cosine (the control). mAP: leave-one-out, exact float index. Head: "
            f"LogisticHead (defaults) on a stratified 70 %, scored on 30 %, {HEAD_SPLITS} "
            f"splits, ≤ {HEAD_IMAGES:,} images a set.", "",
            "| set | images | cosine mean / min | ACC fp32 | ACC int8 | Δ ACC | noise Δ | "
            "mAP fp32 / int8 | head fp32 / int8" + own + " |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.own else "")]
    for r in rows:
        d, nd = r["diff"], r["noise_diff"]
        extra = (f" | {r['own_cos']:.4f}, {r['acc']['own']:.3f}, {r['map']['own']:.3f}, "
                 f"{r['head']['own']:.3f}" if args.own else "")
        lines.append(
            f"| {r['set']} | {r['n']:,} | {r['cos_mean']:.4f} / {r['cos_min']:.4f} | "
            f"{r['acc']['fp32']:.3f} | {r['acc']['int8']:.3f} | "
            f"{d.mean():+.3f} ± {d.std(ddof=1):.3f} | {nd.mean():+.3f} ± {nd.std(ddof=1):.3f} "
            f"| {r['map']['fp32']:.3f} / {r['map']['int8']:.3f} | "
            f"{r['head']['fp32']:.3f} / {r['head']['int8']:.3f}{extra} |")
    if sketch:
        f, i = np.array(sketch["fp32"]), np.array(sketch["int8"])
        sd = statistics.stdev(i - f) if len(f) > 1 else 0.0
        lines += ["", f"Sketch (dev Sketchy, {len(f)} class splits, default path): fp32 "
                  f"{f.mean():.3f}, int8 {i.mean():.3f}, paired Δ {(i - f).mean():+.3f} ± "
                  f"{sd:.3f} (per split: " + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in
                                                      zip(f, i, strict=True)) + ")."]
    if ks:
        def found(k: list[int], n: int) -> str:
            hit = sum(abs(v - n) <= 0.2 * n for v in k)
            return ", ".join(map(str, k)) + (" ✓" if hit == len(k) else f" ({hit}/{len(k)})")

        lines += ["", "`--k auto` (3 seeds; ✓: every seed within ±20 % of the classes):", "",
                  "| set | classes | fp32 | int8 | noise control |", "|---|---:|---|---|---|"]
        for name, r in ks.items():
            n = r["classes"][0]
            lines.append(f"| {name} | {n} | {found(r['fp32'], n)} | {found(r['int8'], n)} | "
                         f"{found(r['noise'], n)} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        title = ("int8 by default: --k auto (dev sets)" if not rows and not sketch
                 else "int8 by default: quality (dev sets)")
        write_section(ROOT / "benchmarks" / "RESULTS.md", title, body)


if __name__ == "__main__":
    main()
