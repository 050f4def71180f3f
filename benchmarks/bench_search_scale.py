"""Search at scale: 1,000,000 vectors, one index per code family.

    python benchmarks/bench_search_scale.py [--data synthetic|replicated] [--n 1000000]
                                            [--dim 128] [--codes SPEC[/ef=N|/nprobe=N],...]

--data synthetic: unit vectors around 1,000 random centres. --data replicated: the real
default-backbone features of the dev sets (every efficientnet_lite0 store under
benchmarks/_work, left there by bench_retrieval.py / bench_cluster.py), reduced to --dim by
PCA and replicated with Gaussian noise up to --n; the noise is scaled to half the real
vectors' median nearest-neighbour distance, so a replica stays nearer its original than
the original's nearest real neighbour does, mostly.

For each family: build time, bytes per vector on disk, time to open the saved index
(memory-mapped where faiss allows), single-query latency p50/p99 on one thread, and two
recalls against exact cosine search, on held-out queries from the same distribution:
10-recall@10 (the share of the true 10 nearest neighbours found in the top 10, as in
ann-benchmarks) and 1-recall@10 (the share of queries whose true nearest neighbour is in
the top 10, the "R@10" of the product-quantisation literature). For compressed codes the
table adds the 10-recall@10 of an exhaustive search over the same codes, which separates
what the code loses from what the graph or the inverted lists lose.

Both data sets have a known noise level, which bounds every 64-byte code: a last row
searches the vectors exactly after adding the error of an ideal 4-bit-per-dimension
quantiser of the noise alone (Gaussian rate-distortion, variance sigma^2 * 2^-8 per
dimension). That is optimistic for any real code, which must also spend bits on where the
clean vector lies, so a 10-recall@10 below 0.95 there means no 64-byte code reaches it.
Writes the section "Search at scale" (or "Search at scale (replicated dev features)") of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, preamble, write_section
from imgatlas.index import CodeIndex


def data(n: int, dim: int, centres: int = 1000, seed: int = 0) -> tuple[np.ndarray, float]:
    """Unit vectors around random centres, and the per-dimension noise after normalising."""
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, dim)).astype(np.float32)
    y = rng.integers(0, centres, n)
    X = C[y] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / norms, float(0.5 / np.median(norms))


def replicated(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, str, float]:
    """Real dev features, PCA to ``dim``, replicated with noise to ``n`` unit vectors; also
    the per-dimension noise."""
    import faiss
    from sklearn.decomposition import PCA

    from imgatlas import api

    parts, names = [], []
    for ws in sorted((ROOT / "benchmarks" / "_work").glob("*/catalog.sqlite")):
        try:
            _, F, _ = api.load_features(ws.parent, features="efficientnet_lite0")
        except Exception:  # noqa: BLE001 - a workspace without these features: skip it
            continue
        parts.append(F)
        names.append(f"{ws.parent.name} {len(F):,}")
    if not parts:
        raise SystemExit("No dev features under benchmarks/_work: run bench_retrieval.py first.")
    R = np.concatenate(parts).astype(np.float32)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    R = PCA(dim, random_state=seed).fit_transform(R).astype(np.float32)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    flat = faiss.IndexFlatL2(dim)
    flat.add(R)
    nn = float(np.median(np.sqrt(flat.search(R, 2)[0][:, 1])))
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(R), n)
    sigma = 0.5 * nn / np.sqrt(dim)  # noise norm ~ half the median nearest-neighbour distance
    X = R[src] + sigma * rng.normal(size=(n, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    desc = (f"the default-backbone features of {len(R):,} dev images ({', '.join(names)}), "
            f"PCA to {dim} dimensions, replicated to {n:,} unit vectors with Gaussian noise of "
            f"norm ~{0.5 * nn:.3f} (half the median nearest-neighbour distance {nn:.3f} of the "
            f"real vectors)")
    return X, desc, float(sigma)


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    """10-recall@10: the share of the true neighbours found."""
    return float(np.mean([len(set(f) & set(g)) / len(g) for f, g in zip(found, truth,
                                                                         strict=True)]))


def nearest_found(found: np.ndarray, truth: np.ndarray) -> float:
    """1-recall@10: the share of queries whose true nearest neighbour was found."""
    return float(np.mean([g[0] in set(f) for f, g in zip(found, truth, strict=True)]))


def same_codes_exhaustive(index: object, Q: np.ndarray) -> np.ndarray | None:
    """Top 10 by an exhaustive search over a compressed index's own codes (PQ in a graph or
    in inverted lists); None for indexes that keep full vectors or are not faiss PQ."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        storage = faiss.downcast_index(index.storage)
        return None if isinstance(storage, faiss.IndexFlat) else storage.search(Q, 10)[1]
    if not isinstance(index, faiss.IndexIVFPQ):
        return None
    probe, index.nprobe = index.nprobe, index.nlist
    try:
        return index.search(Q, 10)[1]
    finally:
        index.nprobe = probe


def ideal_code_bound(X: np.ndarray, Q: np.ndarray, truth: np.ndarray, sigma: float,
                     bits_per_dim: float, seed: int = 1) -> float:
    """10-recall@10 of exact search after an ideal quantiser's error on the noise alone."""
    import faiss

    rng = np.random.default_rng(seed)
    err = sigma * 2.0 ** -bits_per_dim
    # L2 on the reconstructions, as PQ searches: the error then enters as <q - x, e>, small
    # for near neighbours; inner products would add <q, e> and rank far worse
    flat = faiss.IndexFlatL2(X.shape[1])
    for start in range(0, len(X), 100_000):  # chunks: no second 1M x d copy in memory
        part = X[start:start + 100_000]
        flat.add(part + err * rng.normal(size=part.shape).astype(np.float32))
    return overlap(flat.search(Q, 10)[1], truth)


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--codes", default="hnsw:32,hnsw:32/ef=512,hnswpq:64,ivfpq:64,"
                    "hnswpq:64+rerank,itq:128+dsh",
                    help="code specs; SPEC/ef=N or SPEC/nprobe=N sets the search breadth")
    ap.add_argument("--data", choices=("synthetic", "replicated"), default="synthetic")
    ap.add_argument("--title", help="the RESULTS section to write (default: 'Search at "
                    "scale', with ' (replicated dev features)' for --data replicated); another "
                    "title keeps that section, e.g. when re-measuring one family")
    ap.add_argument("--one-level", action="store_true",
                    help="train IVF lists by one-level k-means, as before two-level training "
                         "came in (imgatlas.index._faiss_util.TWO_LEVEL_FROM): to compare")
    args = ap.parse_args()
    if args.one_level:
        from imgatlas.index import _faiss_util

        _faiss_util.TWO_LEVEL_FROM = 1 << 62
    if args.data == "synthetic":
        allX, sigma = data(args.n + args.queries, args.dim)
        desc = (f"{args.n:,} x {args.dim} unit vectors around 1,000 random centres (noise 0.5)")
    else:
        allX, desc, sigma = replicated(args.n + args.queries, args.dim)
    X, Q = allX[:args.n], allX[args.n:]
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(X)
    truth = exact.search(Q, 10)[1]
    del exact
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="imgatlas-scale-"))
    for entry in args.codes.split(","):
        spec, _, knob = entry.partition("/")  # e.g. hnsw:32/ef=256, ivfpq:64/nprobe=64
        breadth = {"ef_search" if knob.startswith("ef") else "nprobe": int(knob.split("=")[1])
                   } if knob else {}
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        ci = CodeIndex(spec).fit(X)
        build = time.perf_counter() - t
        folder = Path(tempfile.mkdtemp(dir=tmp))
        ci.save(folder)
        size = sum(f.stat().st_size for f in folder.iterdir()) / args.n
        factory, learned = ci.factory_, ci.spec_.learned
        del ci
        t = time.perf_counter()
        ci = CodeIndex.load(folder, spec, factory, args.n, args.dim).set_search(**breadth)
        opened = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        lat, found = [], []
        for q in Q:
            t = time.perf_counter()
            _, rows_ = ci.search(q[None], 10)
            lat.append((time.perf_counter() - t) * 1000)
            found.append(rows_[0])
        found = np.array(found)
        recall, nearest = overlap(found, truth), nearest_found(found, truth)
        note, ceiling = "", "-"
        faiss.omp_set_num_threads(2)
        if learned:  # the graph's own approximation: against an exhaustive search of the codes
            flat = faiss.IndexBinaryFlat(ci.spec_.size)
            flat.add(np.ascontiguousarray(ci._codes()))
            ref = flat.search(ci.transform_queries(Q), 10)[1]
            note = f" (vs exhaustive search of the same codes: {overlap(found, ref):.3f})"
        else:
            exhaustive = same_codes_exhaustive(ci.index_, ci.transform_queries(Q))
            if exhaustive is not None:
                ceiling = f"{overlap(exhaustive, truth):.3f}"
        code = ci.bytes_per_image()["code_bytes"]
        rows.append(f"| {entry} | {ci.factory_} | {build:.0f} | {code:g} | {size:.0f} | "
                    f"{opened:.2f} | {np.percentile(lat, 50):.3f} | "
                    f"{np.percentile(lat, 99):.3f} | {recall:.3f}{note} | {nearest:.3f} | "
                    f"{ceiling} |")
        print(rows[-1], flush=True)
        shutil.rmtree(folder)
        del ci
    bits = 64 * 8 / args.dim
    bound = ideal_code_bound(X, Q, truth, sigma, bits)
    rows.append(f"| bound: ideal 64-byte code | exact search after the error of an ideal "
                f"{bits:g}-bit-per-dimension quantiser of the noise alone (per-dimension noise "
                f"{sigma:.4f}) | - | 64 | - | - | - | - | {bound:.3f} | - | - |")
    print(rows[-1], flush=True)
    body = [*preamble("faiss", "numpy"),
            f"{desc}, {args.queries} held-out queries; recall@10 against exact cosine search; "
            "latency on one thread, one query per call; build on two threads. `+learn` codes "
            "rank by the smoothed collection's codes by design, so their recall against exact "
            "search of the raw vectors measures a different ranking; beside it, the binary "
            "graph's recall against an exhaustive search of the same codes. 10-recall@10: "
            "share of the true 10 nearest neighbours in the top 10 (ann-benchmarks); "
            "1-recall@10: share of queries whose true nearest neighbour is in the top 10 (the "
            "R@10 of the PQ literature); 'same codes, exhaustive': 10-recall@10 of a brute-force "
            "search over the index's own compressed codes, the most its graph or lists could "
            "reach. The last row bounds every 64-byte code on this data (see the script's "
            "docstring)." + (" IVF lists trained by one-level k-means (`--one-level`)."
                             if args.one_level else ""), "",
            "| codes | faiss | build s | code bytes | bytes/vector on disk | open s | p50 ms | "
            "p99 ms | 10-recall@10 | 1-recall@10 | same codes, exhaustive |",
            "|---|---|---|---|---|---|---|---|---|---|---|", *rows]
    title = args.title or ("Search at scale" + (" (replicated dev features)"
                                                if args.data == "replicated" else ""))
    write_section(ROOT / "benchmarks" / "RESULTS.md", title, "\n".join(body))


if __name__ == "__main__":
    main()
