"""Which clustering method to run on the default reduction: k-means against graph, consensus,
mixture and UMAP heads, each on the same reduced features of every dev set.

    python benchmarks/bench_cluster_heads.py [--sets imagenette,rooms,...] [--seeds 3]

Reads the default-backbone features that bench_cluster.py left in benchmarks/_work/<set>
(run it first), reduces them with imgatlas' default reduction, clusters with k = the number
of classes, and scores Hungarian ACC (labels only score). Writes the section "Clustering
heads on the default reduction" of benchmarks/RESULTS.md. This is the measurement behind
the choice of k-means as the default method.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.cluster import SpectralClustering

from _common import ROOT, preamble, write_section
from imgatlas import api
from imgatlas.api import DEFAULT_REDUCE
from imgatlas.cluster import GMMClusterer, KMeansClusterer
from imgatlas.evaluate import cluster_accuracy
from imgatlas.reduce import make_reducer

WORK = ROOT / "benchmarks" / "_work"
CONSENSUS_MAX = 6000  # the co-association matrix is n x n


def kmeans(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeansClusterer(k, random_state=seed).fit_predict(Z)


def spectral(neighbours: int):
    def run(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
        return SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=neighbours,
                                  assign_labels="cluster_qr", random_state=seed).fit_predict(Z)
    return run


def consensus(Z: np.ndarray, k: int, seed: int, runs: int = 10) -> np.ndarray | None:
    """Evidence accumulation: k-means with k..3k clusters, average linkage on co-association."""
    if len(Z) > CONSENSUS_MAX:
        return None
    rng = np.random.default_rng(seed)
    co = np.zeros((len(Z), len(Z)), np.float32)
    for kk in rng.integers(k, 3 * k, runs):
        lab = KMeansClusterer(int(kk), n_init=1, random_state=int(rng.integers(2**31))
                              ).fit_predict(Z)
        co += lab[:, None] == lab[None, :]
    D = 1 - co / runs
    np.fill_diagonal(D, 0)
    return fcluster(linkage(squareform(D, checks=False), "average"), k, "maxclust") - 1


def overcluster_ward(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means with 5k clusters, then Ward linkage of their centres down to k."""
    km = KMeansClusterer(5 * k, random_state=seed).fit(Z)
    merged = fcluster(linkage(km.cluster_centers_, "ward"), k, "maxclust") - 1
    return merged[km.labels_]


def gmm_diag(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    return GMMClusterer(k, covariance_type="diag", random_state=seed).fit_predict(Z)


def umap_then(head):
    def run(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
        U = make_reducer("umap:10:cosine", random_state=seed).fit_transform(Z)
        return head(U, k, seed)
    return run


HEADS = {
    "k-means (the default)": kmeans,
    "spectral, 10-NN graph": spectral(10),
    "spectral, 30-NN graph": spectral(30),
    f"consensus of 10 k-means (n <= {CONSENSUS_MAX:,})": consensus,
    "k-means to 5k, Ward merge": overcluster_ward,
    "GMM, diagonal": gmm_diag,
    "UMAP-10 + k-means": umap_then(kmeans),
    "UMAP-10 + GMM": umap_then(lambda U, k, s: GMMClusterer(k, random_state=s).fit_predict(U)),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="imagenette,rooms,clothing,cifar10,fashion-mnist")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    sets = args.sets.split(",")
    warnings.filterwarnings("ignore", category=UserWarning)  # spectral: graph not connected
    cells: dict[str, list[str]] = {name: [] for name in HEADS}
    for name in sets:
        _, X, rows = api.load_features(WORK / name, features="efficientnet_lite0")
        y = np.unique([r["label"] for r in rows], return_inverse=True)[1]
        k = int(y.max()) + 1
        Z = make_reducer(DEFAULT_REDUCE).fit_transform(X)
        for head, run in HEADS.items():
            t = time.perf_counter()
            scores = [run(Z, k, seed) for seed in range(args.seeds)]
            sec = (time.perf_counter() - t) / args.seeds
            if scores[0] is None:
                cells[head].append("too large")
                continue
            acc = [cluster_accuracy(y, np.asarray(p)) for p in scores]
            cells[head].append(f"**{np.mean(acc):.3f}** ± {np.std(acc):.3f}; {sec:.1f}s")
            print(f"{name:14s} {head:40s} {cells[head][-1]}", flush=True)
    body = [*preamble("sklearn", "umap"),
            f"Default reduction `{DEFAULT_REDUCE}` of the default-backbone features, then each "
            f"method with k = number of classes; Hungarian ACC mean ± sd over {args.seeds} "
            "seeds and seconds per run (the reduction, shared, not counted). Labels only score.",
            "", "| method | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|",
            *(f"| {head} | " + " | ".join(c) + " |" for head, c in cells.items())]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Clustering heads on the default reduction",
                  "\n".join(body))


if __name__ == "__main__":
    main()
