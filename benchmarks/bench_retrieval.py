"""Retrieval quality per code family on the labelled dev sets, through
`imgatlas.api.evaluate_retrieval`, under two protocols:

- leave-one-out: codes fitted on every image, each query ranks the rest (the study's way);
- held-out: a seeded 20% of the images never enters fitting and queries the other 80%,
  as a user's new photo would. This is the honest figure for codes fitted on the
  collection's neighbour structure (+smooth, +learn).

    python benchmarks/bench_retrieval.py [--sets ...] [--codes float,pca:64,...] [--queries 1000]
                                         [--seeds 3]

Each protocol runs once per seed (a different query sample for leave-one-out, a different
split for held-out); cells give the mean and the spread of mAP over the seeds: one split of
a 5,000-image set moves mAP by +-0.01.

`default` in --codes means the code `imgatlas index` picks for the set's size. Writes the
section "Retrieval quality (dev sets)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api
from imgatlas.defaults import codes as default_codes

WORK = ROOT / "benchmarks" / "_work"
CODES = ("float,pca:64,pq:64,pq:64+rerank,sign:512,itq:512,umap:16,umap:16@1000,itq:512+smooth,"
         "itq:512+learn,default")
PROTOCOLS = {"leave-one-out": 0.0, "held-out 20%": 0.2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="imagenette,rooms,clothing,cifar10,fashion-mnist")
    ap.add_argument("--codes", default=CODES)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    sets = [s for s in args.sets.split(",") if (SHARED / s).exists()]
    res: dict[str, dict[str, dict]] = {}
    for s in sets:
        ws = WORK / s
        if not (ws / "catalog.sqlite").exists():
            api.scan(SHARED / s, ws, labels_from_folders=True)
            api.embed(ws, cache_dir=WORK / "cache")
        n = api.status(ws)["usable"]
        for proto, holdout in PROTOCOLS.items():
            n_fit = n - int(round(holdout * n))
            codes = [default_codes(n_fit) if c == "default" else c
                     for c in args.codes.split(",")]
            runs = [api.evaluate_retrieval(ws, list(dict.fromkeys(codes)),
                                           features="efficientnet_lite0",
                                           n_queries=args.queries, holdout=holdout,
                                           seed=seed, wait=900)["codes"]
                    for seed in range(args.seeds)]
            for c in args.codes.split(","):
                key = default_codes(n_fit) if c == "default" else c
                m = _mean_over_seeds([r.get(key, {"error": "not run"}) for r in runs])
                res.setdefault(s, {})[(proto, c)] = {**m, "spec": key}
                if "error" in m:
                    print(f"{s:14s} {proto:14s} {key:16s} {m['error']}", flush=True)
                    continue
                print(f"{s:14s} {proto:14s} {key:16s} mAP {m['map']:.3f} ± {m['map_sd']:.3f} "
                      f"P@10 {m['p_at_10']:.3f} {m['bytes_per_image']:g} B "
                      f"{m['ms_per_query_p50']:.2f} ms build {m['build_seconds']:.1f} s",
                      flush=True)
    lines = []
    for proto in PROTOCOLS:
        lines += [f"### {proto}", "",
                  "| codes | bytes/image (code; whole index) | " + " | ".join(sets) + " |",
                  "|---" * (len(sets) + 2) + "|"]
        for c in args.codes.split(","):
            cells, b = [], None
            for s in sets:
                m = res[s][(proto, c)]
                if "error" in m:
                    cells.append(f"n/a: {m['error']}")
                    continue
                b = b or m
                name = f"`{m['spec']}` " if c == "default" else ""
                cells.append(f"{name}**{m['map']:.3f}** ± {m['map_sd']:.3f} / {m['mrr']:.2f} / "
                             f"{m['p_at_10']:.2f}; {m['ms_per_query_p50']:.2f}/"
                             f"{m['ms_per_query_p99']:.2f} ms; build {m['build_seconds']:.1f} s")
            size = "" if b is None else \
                f"{b['bytes_per_image']:g}; {b['index_bytes_per_image']:,.0f}"
            label = "default (`imgatlas index`)" if c == "default" else f"`{c}`"
            lines.append(f"| {label} | {size} | " + " | ".join(cells) + " |")
        lines.append("")
    body = [*preamble(),
            f"Up to {args.queries} seeded queries per set, each ranking the whole (fitted) "
            f"collection; relevance = same label; {args.seeds} seeds (query samples for "
            "leave-one-out, splits for held-out). Cells: **mAP** ± its sd over the seeds / MRR "
            "/ P@10 (means); single-query latency p50/p99; index build time. Bytes: what one "
            "image costs in codes; and the whole index divided by the images (for `+smooth`, "
            "the two float vectors per image kept for query expansion; for `+learn`/`+dsh`, "
            "the shared query map spread over the images; for `umap`, the UMAP model that "
            "places queries). "
            "Labels only score: no code is fitted on them. Run alone on the machine.", ""
            ] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Retrieval quality (dev sets)",
                  "\n".join(body))


def _mean_over_seeds(runs: list[dict]) -> dict:
    """Numbers averaged over the seeds' runs, plus ``map_sd``; the first error if any."""
    bad = [r for r in runs if "error" in r]
    if bad:
        return bad[0]
    keys = ("map", "mrr", "p_at_10", "ms_per_query_p50", "ms_per_query_p99", "build_seconds",
            "bytes_per_image", "index_bytes_per_image")
    out = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    out["map_sd"] = float(np.std([r["map"] for r in runs]))
    return out


if __name__ == "__main__":
    main()
