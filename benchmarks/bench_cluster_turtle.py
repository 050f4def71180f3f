"""A margin-seeking head (TURTLE), other representation spaces, and choosing k, on the dev
sets: the measurements behind `--method turtle`, the Lite1/Lite2 backbones and `--k auto`.

1. k-means against TURTLE (equal-size prior, as published, and the k-means prior imgatlas
   defaults to) on the default reduction, k = number of classes, on the balanced dev sets
   and on imbalanced subsets (class c keeps 0.75^c of its images); seeds 0..S-1.
2. Other spaces: k-means on the default reduction of Lite2's features and of Lite0 and
   Lite2 side by side (each L2-normalised), against Lite0's.
3. Choosing k: the SSE elbow over k = 2..30 (the old default range) and over a range that
   grows with the collection (2..max(30, sqrt(n)/2)), on every dev set and on their union
   (46 classes), against the number of classes (the issue asks for +-20 %).

    python benchmarks/bench_cluster_turtle.py [--sets ...] [--seeds 3] [--skip-spaces]

Reads the features bench_cluster.py leaves in benchmarks/_work/<set> (embeds Lite2 there for
part 2). Labels only score. Writes "Clustering: TURTLE head, spaces, choosing k" in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.preprocessing import normalize

from _common import ROOT, preamble, write_section
from imgatlas import api
from imgatlas.cluster import KMeansClusterer, TURTLEClusterer, sweep_k
from imgatlas.defaults import REDUCE, k_range_for
from imgatlas.evaluate import cluster_accuracy
from imgatlas.reduce import make_reducer

WORK = ROOT / "benchmarks" / "_work"
SETS = ["imagenette", "rooms", "clothing", "cifar10", "fashion-mnist"]


def load(name: str, backbone: str = "efficientnet_lite0") -> tuple[np.ndarray, np.ndarray]:
    ids, X, rows = api.load_features(WORK / name, backbone)
    return X, np.array([r["label"] for r in rows])


def imbalance(X: np.ndarray, y: np.ndarray, ratio: float = 0.75
              ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    keep = []
    for c, lab in enumerate(sorted(set(y))):
        idx = np.flatnonzero(y == lab)
        keep += list(rng.choice(idx, max(5, int(len(idx) * ratio ** c)), replace=False))
    keep = np.sort(keep)
    return X[keep], y[keep]


def heads(X: np.ndarray, y: np.ndarray, seeds: int) -> dict[str, tuple[float, float, float]]:
    k = len(set(y))
    runs = {"k-means": [], "TURTLE, equal-size prior": [], "TURTLE, k-means prior": []}
    secs = {key: [] for key in runs}
    for seed in range(seeds):
        Z = make_reducer(REDUCE, random_state=seed).fit_transform(X)
        for key, est in (("k-means", KMeansClusterer(k, random_state=seed)),
                         ("TURTLE, equal-size prior",
                          TURTLEClusterer(k, prior="uniform", random_state=seed)),
                         ("TURTLE, k-means prior", TURTLEClusterer(k, random_state=seed))):
            t = time.perf_counter()
            runs[key].append(cluster_accuracy(y, est.fit(Z).labels_))
            secs[key].append(time.perf_counter() - t)
    return {key: (float(np.mean(v)), float(np.std(v)), float(np.median(secs[key])))
            for key, v in runs.items()}


def _ok(k: int, true: int) -> str:
    return "ok" if abs(k - true) <= 0.2 * true else "off"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-spaces", action="store_true")
    args = ap.parse_args()
    sets = [s for s in args.sets.split(",") if (WORK / s / "catalog.sqlite").exists()]
    lines = preamble("torch", "sklearn") + [
        f"Dev sets, {args.seeds} seeds, k = the number of classes, default reduction "
        f"`{REDUCE}`; Hungarian ACC mean ± sd; seconds per fit (median). Imbalanced: class c "
        "keeps 0.75^c of its images (seeded). TURTLE: 1,500 iterations, gamma 10, inner "
        "learner warm-started, 10 inner steps. These are the dev sets: tuned-on figures.",
        "", "| set | data | k-means | TURTLE, equal-size prior | TURTLE, k-means prior |",
        "|---|---|---|---|---|"]
    for name in sets:
        X, y = load(name)
        for kind, (Xs, ys) in (("balanced", (X, y)), ("imbalanced", imbalance(X, y))):
            r = heads(Xs, ys, args.seeds)
            cells = [f"{m:.3f} ± {s:.3f} ({t:.0f} s)" for m, s, t in r.values()]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
            print(name, kind, cells, flush=True)
    if not args.skip_spaces:
        lines += ["", "Representation spaces, k-means on the default reduction (balanced, "
                  f"{args.seeds} seeds):", "",
                  "| set | Lite0 (default) | Lite2 | Lite0 + Lite2 side by side |",
                  "|---|---|---|---|"]
        for name in sets:
            api.embed(WORK / name, backbone="efficientnet_lite2", cache_dir=WORK / "cache")
            X0, y = load(name)
            X2, y2 = load(name, "efficientnet_lite2")
            assert (y == y2).all()
            spaces = (X0, X2, np.hstack([normalize(X0), normalize(X2)]))
            cells = []
            for X in spaces:
                accs = [cluster_accuracy(y, KMeansClusterer(len(set(y)), random_state=s)
                                         .fit(make_reducer(REDUCE, random_state=s)
                                              .fit_transform(X)).labels_)
                        for s in range(args.seeds)]
                cells.append(f"{np.mean(accs):.3f} ± {np.std(accs):.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(name, cells, flush=True)
            api.embed(WORK / name, cache_dir=WORK / "cache")  # Lite0 stays the latest store
    lines += ["", "Choosing k (SSE elbow on the default reduction, seed 0): found / true:", "",
              "| set | images | classes | k = 2..30 | growing range | range |",
              "|---|---:|---:|---:|---:|---|"]
    data = {n: load(n) for n in sets}
    if len(sets) > 1:
        data["union of the dev sets"] = (
            np.vstack([d[0] for d in data.values()]),
            np.concatenate([[f"{n}/{lab}" for lab in data[n][1]] for n in sets]))
    for name, (X, y) in data.items():
        Z = make_reducer(REDUCE, random_state=0).fit_transform(X)
        lo, hi = k_range_for(len(Z))
        old = sweep_k(Z, range(2, 31), random_state=0)["chosen_k"]
        new = sweep_k(Z, range(lo, hi + 1), random_state=0)["chosen_k"]
        t = len(set(y))
        lines.append(f"| {name} | {len(y):,} | {t} | {old} ({_ok(old, t)}) | {new} "
                     f"({_ok(new, t)}) | {lo}..{hi} |")
        print(name, t, old, new, flush=True)
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Clustering: TURTLE head, spaces, "
                  "choosing k", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
