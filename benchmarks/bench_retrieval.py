"""Retrieval quality per code family on the labelled dev sets (leave-one-out, relevance =
same folder label), through `imgatlas.api.evaluate_retrieval`.

    python benchmarks/bench_retrieval.py [--sets ...] [--codes float,pca:64,...] [--queries 1000]

Writes the section "Retrieval quality (dev sets)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api

WORK = ROOT / "benchmarks" / "_work"
CODES = "float,pca:64,pq:64,sign:512,itq:512,hnsw:32,pca:64+smooth,itq:512+smooth,float+smooth"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="imagenette,rooms,clothing,cifar10,fashion-mnist")
    ap.add_argument("--codes", default=CODES)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    codes = args.codes.split(",")
    sets = [s for s in args.sets.split(",") if (SHARED / s).exists()]
    res = {}
    for s in sets:
        ws = WORK / s
        if not (ws / "catalog.sqlite").exists():
            api.scan(SHARED / s, ws, labels_from_folders=True)
            api.embed(ws, cache_dir=WORK / "cache")
        res[s] = api.evaluate_retrieval(ws, codes, features="efficientnet_lite0",
                                        n_queries=args.queries, wait=900)["codes"]
        for c, m in res[s].items():
            if "error" in m:
                print(f"{s:14s} {c:16s} {m['error']}", flush=True)
                continue
            print(f"{s:14s} {c:16s} mAP {m['map']:.3f} P@10 {m['p_at_10']:.3f} "
                  f"{m['bytes_per_image']:g} B {m['ms_per_query_p50']:.2f} ms", flush=True)
    lines = ["| codes | code bytes/image | " + " | ".join(sets) + " |",
             "|---" * (len(sets) + 2) + "|"]
    for spec in codes:
        cells, b = [], None
        for s in sets:
            m = res[s].get(spec, {"error": "not run"})
            if "error" in m:
                cells.append(f"n/a: {m['error']}")
                continue
            b = b or m
            cells.append(f"**{m['map']:.3f}** / {m['mrr']:.2f} / {m['p_at_10']:.2f}; "
                         f"{m['ms_per_query_p50']:.2f}/{m['ms_per_query_p99']:.2f} ms")
        size = "" if b is None else f"{b['bytes_per_image']:g}"
        if b is not None and spec.endswith("+smooth"):
            size += f" (+{b['index_bytes_per_image'] - b['bytes_per_image']:.0f} for expansion)"
        lines.append(f"| {spec} | {size} | " + " | ".join(cells) + " |")
    body = [*preamble(),
            f"Leave-one-out over {args.queries} seeded queries per set (all images when fewer), "
            "each ranking the whole collection; relevance = same label. Cells: **mAP** / MRR / "
            "P@10; single-query latency p50/p99. Code bytes are what one image costs in the "
            "index; `+smooth` (kNN diffusion of the collection plus query expansion) also keeps "
            "two float vectors per image for the expansion, shown beside it. Labels only "
            "score: no code is fitted on them.", ""] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Retrieval quality (dev sets)",
                  "\n".join(body))


if __name__ == "__main__":
    main()
