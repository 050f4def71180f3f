"""faiss' matrix products with the OpenBLAS kernel its wheel picks against the one imgatlas
sets (imgatlas/_blas.py): the same workloads in fresh processes, side by side, alternating.

Workloads (random float32 vectors, seed 0):
- assign: 65,536 vectors of 1,280 dimensions to their nearest of 4,000 centroids (one shard
  of an ivfpq index at a million images);
- knn: the 15 nearest neighbours of each of 10,000 unit vectors among themselves (the exact
  graph the reductions and the map build below 50,000 images);
- kmeans: faiss k-means, k = 20, 20 iterations, 50,000 vectors of 1,280 dimensions.

    python benchmarks/bench_blas.py [--repeats 2]

Writes "faiss and OpenBLAS" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, preamble, write_section

CHILD = r"""
import json, sys, time
if sys.argv[1] == "imgatlas":
    import imgatlas  # sets OPENBLAS_CORETYPE before faiss loads
import faiss, numpy as np, threadpoolctl
rng = np.random.default_rng(0)
out = {}
C = rng.normal(size=(4000, 1280)).astype("float32")
X = rng.normal(size=(65536, 1280)).astype("float32")
flat = faiss.IndexFlatL2(1280); flat.add(C)
t = time.perf_counter(); flat.search(X, 1); out["assign"] = time.perf_counter() - t
Y = X[:10000] / np.linalg.norm(X[:10000], axis=1, keepdims=True)
ip = faiss.IndexFlatIP(1280); ip.add(Y)
t = time.perf_counter(); ip.search(Y, 16); out["knn"] = time.perf_counter() - t
km = faiss.Kmeans(1280, 20, niter=20, seed=0)
t = time.perf_counter(); km.train(X[:50000]); out["kmeans"] = time.perf_counter() - t
out["kernel"] = ", ".join(sorted({i.get("architecture") or "?" for i in
                                  threadpoolctl.threadpool_info()
                                  if i["internal_api"] == "openblas"
                                  and "faiss" in i["filepath"]}))
print(json.dumps(out))
"""

WORK = ("assign", "knn", "kmeans")


def child(which: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", CHILD, which], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for which in ("wheel", "imgatlas"):
            r = child(which)
            print(which, r, flush=True)
            b = best.setdefault(which, r)
            for w in WORK:
                b[w] = min(b[w], r[w])
    lines = preamble("faiss", "numpy")
    lines += ["Each workload in a fresh process, the two settings alternating, best of "
              f"{args.repeats}; seconds.", "",
              "| workload | the wheel's own kernel | imgatlas' kernel | speed-up |",
              "|---|---:|---:|---:|"]
    lines += [f"| {w} | {best['wheel'][w]:.2f} | {best['imgatlas'][w]:.2f} | "
              f"**{best['wheel'][w] / best['imgatlas'][w]:.1f}x** |" for w in WORK]
    lines += ["", f"Kernels (threadpoolctl, faiss' OpenBLAS): the wheel's own "
              f"{best['wheel']['kernel']}; imgatlas' {best['imgatlas']['kernel']}."]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "faiss and OpenBLAS", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
