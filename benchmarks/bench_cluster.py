"""Clustering quality on the labelled dev sets: the studies' pipelines, the plain baseline
and imgatlas' default, each over several seeds, through the real API (scan -> embed ->
cluster -> evaluate). Labels only score.

    python benchmarks/bench_cluster.py [--sets imagenette,rooms,clothing,cifar10,fashion-mnist]
                                       [--seeds 5] [--pipelines NAME,...]

Workspaces are kept in benchmarks/_work/<set> (features are computed once). Writes the
section "Clustering quality" of benchmarks/RESULTS.md: ACC mean ± sd over seeds (min-max),
NMI, ARI and seconds per run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api, defaults

WORK = ROOT / "benchmarks" / "_work"

# name -> (backbone, cluster kwargs); k is filled in per set ("given") unless "auto".
PIPELINES: dict[str, tuple[str, dict]] = {
    "raw pixels + k-means (study)": ("raw", {"reduce": "none", "method": "kmeans"}),
    "features + PCA-95% + ward (study)": (
        "efficientnet_lite0", {"reduce": "pca:0.95", "method": "agglomerative",
                               "options": {"linkage": "ward"}}),
    "features + UMAP-10 + DBSCAN (study)": (
        "efficientnet_lite0", {"reduce": "umap:10:cosine", "method": "dbscan",
                               "options": {"min_samples": 10}, "k": None}),
    "features + UMAP-10 + k-medoids (study)": (
        "efficientnet_lite0", {"reduce": "umap:10:cosine", "method": "kmedoids"}),
    "features + UMAP-10 + GMM": (
        "efficientnet_lite0", {"reduce": "umap:10:cosine", "method": "gmm"}),
    "baseline: features + L2 + k-means": (
        "efficientnet_lite0", {"reduce": "l2", "method": "kmeans"}),
    "previous default: kNN-smooth + k-means": (
        "efficientnet_lite0", {"reduce": "knn-smooth:10", "method": "kmeans"}),
    "imgatlas default": ("efficientnet_lite0", {}),
    "candidate: kNN-smooth + UMAP-10 + GMM": (
        "efficientnet_lite0", {"reduce": "knn-smooth:10,umap:10:cosine", "method": "gmm"}),
    "imgatlas default (k auto)": ("efficientnet_lite0", {"k": "auto"}),
}


def prepare(name: str, backbone: str) -> Path:
    ws = WORK / name
    if not (ws / "catalog.sqlite").exists():
        api.scan(SHARED / name, ws, labels_from_folders=True)
    if backbone == "raw":
        backbone = "raw_pixels_28" if name == "fashion-mnist" else "raw_pixels_32"
    res = api.embed(ws, backbone=backbone, cache_dir=WORK / "cache")
    return ws, res["store"]


ROW = re.compile(r"^(\S+)\s+(.+?)\s+ACC ([\d.]+)±([\d.]+) NMI ([\d.]+) ARI ([\d.]+) "
                 r"k \[([\d, ]+)\] ([\d.]+)s$")


def table(sets: list[str], names: list[str], results: dict[tuple[str, str], dict]
          ) -> list[str]:
    """Markdown rows: one per pipeline, one cell per set ('not run' where absent)."""
    lines = ["| pipeline | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for name in names:
        cells = []
        for s in sets:
            r = results.get((s, name))
            if r is None:
                cells.append("not run")
                continue
            k = r["k"] if isinstance(r["k"], str) else ", ".join(map(str, r["k"]))
            kk = f", k={k}" if "auto" in name or "DBSCAN" in name else ""
            spread = f" ({r['min']:.2f}-{r['max']:.2f})" if "min" in r else ""
            cells.append(f"**{r['acc']:.3f}** ± {r['sd']:.3f}{spread}; NMI {r['nmi']:.2f}, "
                         f"ARI {r['ari']:.2f}; {r['sec']:.1f}s{kk}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_log(logs: list[Path], seeds: int) -> None:
    """The table from the per-row lines runs printed (min-max is not in those lines); for a
    (set, pipeline) printed by several logs, the last log given wins."""
    rows = [m.groups() for log in logs for line in log.read_text().splitlines()
            if (m := ROW.match(line))]
    sets = list(dict.fromkeys(r[0] for r in rows))
    names = list(dict.fromkeys(r[1] for r in rows))
    results = {(r[0], r[1]): {"acc": float(r[2]), "sd": float(r[3]), "nmi": float(r[4]),
                              "ari": float(r[5]), "k": r[6], "sec": float(r[7])} for r in rows}
    lines = table(sets, names, results)
    body = [*preamble(), f"Hungarian-matched ACC, mean ± sd over {seeds} seeds, mean NMI/ARI, "
            "median seconds per clustering run, k = number of classes unless the row says auto. "
            f"Rendered from the rows the runs printed (`--render-log`, logs in "
            f"benchmarks/logs: {', '.join(p.name for p in logs)}; a later log's row replaces "
            "an earlier one); cells marked 'not run' were not reached. These are the dev sets "
            "the defaults were chosen on: figures on held-out data are the honest test. "
            f"'imgatlas default' is `{defaults.REDUCE}` + k-means, measured by the last "
            "log; 'previous default' is the pipeline it replaced.", ""
            ] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Clustering quality (dev sets)",
                  "\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="imagenette,rooms,clothing,cifar10,fashion-mnist")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--render-log", type=Path, nargs="+", default=None,
                    help="Only render the table from the rows a (stopped) run printed.")
    args = ap.parse_args()
    if args.render_log:
        render_log(args.render_log, args.seeds)
        return
    names = [p for p in args.pipelines.split(",") if p]
    sets = [s for s in args.sets.split(",") if (SHARED / s).exists()]
    results: dict[tuple[str, str], dict] = {}
    for s in sets:
        k_true = sum(1 for d in (SHARED / s).iterdir() if d.is_dir())
        for name in names:
            backbone, kw = PIPELINES[name]
            ws, store = prepare(s, backbone)
            kw = dict(kw)
            k = kw.pop("k", k_true)
            accs, nmis, aris, secs, ks = [], [], [], [], []
            for seed in range(args.seeds):
                t = time.perf_counter()
                run = api.cluster(ws, features=store, k=k, seed=seed, **kw)
                secs.append(time.perf_counter() - t)
                ev = api.evaluate(ws, run["run_id"])
                accs.append(ev["acc"])
                nmis.append(ev["nmi"])
                aris.append(ev["ari"])
                ks.append(run["n_clusters"])
            results[(s, name)] = {
                "acc": statistics.mean(accs), "sd": statistics.pstdev(accs),
                "min": min(accs), "max": max(accs), "nmi": statistics.mean(nmis),
                "ari": statistics.mean(aris), "sec": statistics.median(secs),
                "k": sorted(set(ks)),
            }
            r = results[(s, name)]
            print(f"{s:14s} {name:42s} ACC {r['acc']:.3f}±{r['sd']:.3f} NMI {r['nmi']:.3f} "
                  f"ARI {r['ari']:.3f} k {r['k']} {r['sec']:.1f}s", flush=True)

    lines = table(sets, names, results)
    body = [*preamble(),
            f"Hungarian-matched ACC, mean ± sd over {args.seeds} seeds (min-max), mean NMI/ARI, "
            "median seconds per clustering run (features already computed; UMAP's first call "
            "in a process includes numba compilation). k = number of classes unless the row "
            "says auto. These are the dev sets the defaults were chosen on: figures on held-out "
            "data are the honest test.", ""] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Clustering quality (dev sets)",
                  "\n".join(body))


if __name__ == "__main__":
    main()
