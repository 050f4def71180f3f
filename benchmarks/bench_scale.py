"""Clustering at scale: 1,000,000 x 128-d float32 vectors, k-means through imgatlas.

    python benchmarks/bench_scale.py [--n 1000000] [--dim 128] [--k 10,100]

Synthetic but clustered data (Gaussian blobs around random centres). Reports wall time of
`KMeansClusterer.fit` (faiss k-means above 200k points), peak RSS growth, and ACC against
the generating blob (a sanity check that the fast path still clusters). Also shows what the
quadratic methods do at that size: they fit on a sample and assign the rest.
Writes the section "Clustering at scale" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from _common import ROOT, preamble, write_section
from imgatlas.cluster import Agglomerative, KMeansClusterer
from imgatlas.evaluate import cluster_accuracy


def blobs(n: int, dim: int, centres: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    C = rng.normal(0, 1, (centres, dim)).astype(np.float32)
    y = rng.integers(0, centres, n)
    X = C[y] + rng.normal(0, 0.35, (n, dim)).astype(np.float32)
    return X, y


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", default="10,100")
    args = ap.parse_args()
    rows = []
    for k in (int(v) for v in args.k.split(",")):
        X, y = blobs(args.n, args.dim, k)
        before = rss_mb()
        t = time.perf_counter()
        km = KMeansClusterer(k, random_state=0).fit(X)
        sec = time.perf_counter() - t
        acc = cluster_accuracy(y, km.labels_)
        rows.append(f"| k-means (faiss path) | {args.n:,} x {args.dim} | {k} | {sec:.1f} | "
                    f"{rss_mb() - before:.0f} | {acc:.3f} |")
        print(rows[-1], flush=True)
        if k == 10:
            t = time.perf_counter()
            ag = Agglomerative(k, linkage="ward").fit(X)
            sec = time.perf_counter() - t
            rows.append(f"| ward, fit on 10k sample + nearest mean | {args.n:,} x {args.dim} | "
                        f"{k} | {sec:.1f} | {rss_mb() - before:.0f} | "
                        f"{cluster_accuracy(y, ag.labels_):.3f} |")
            print(rows[-1], flush=True)
        del X, y
    body = [*preamble("faiss", "sklearn", "numpy"),
            "| method | data | k | seconds | peak RSS growth MB | ACC vs generating blob |",
            "|---|---|---|---|---|---|", *rows]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Clustering at scale", "\n".join(body))


if __name__ == "__main__":
    main()
