"""Few labels -> the whole collection, on every labelled dev set, in one run.

A simulated person labels what ``suggest-labels`` proposes (rounds up to 1, 2, 5 and 10
labels per class: each round asks for the difference), and ``label-propagate``'s spreading
labels everything else; the same budgets picked at random, 3 seeds. Scored: the share of
every image of the collection whose label is right (the person's labels count as right).
Reference: the default clustering with k = the number of classes, each cluster named by
its majority (k labels, if a person could name a cluster at a glance).

    python benchmarks/bench_labels.py [--sets clothing rooms imagenette cifar10 fashion-mnist]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, preamble, write_section  # noqa: E402

BUDGETS = (1, 2, 5, 10)


def curve(X: np.ndarray, y: np.ndarray, C: int, picker: str, seed: int) -> dict[int, float]:
    from imgatlas.classify._propagate import affinity, propagate, suggest

    S = affinity(X)
    rng = np.random.default_rng(seed)
    labelled = np.array([], dtype=np.int64)
    out = {}
    for m in BUDGETS:
        need = m * C - len(labelled)
        free = np.setdiff1d(np.arange(len(y)), labelled)
        if picker == "random":
            new = rng.choice(free, need, replace=False)
        else:
            new = np.array([p["row"] for p in suggest(X, labelled, y[labelled], need,
                                                      seed=seed)], dtype=np.int64)
        labelled = np.concatenate([labelled, new])
        present = np.unique(y[labelled])
        if len(present) < 2:
            pred = np.full(len(y), present[0])
        else:
            remap = {c: j for j, c in enumerate(present)}
            lab, _ = propagate(X, labelled, np.array([remap[c] for c in y[labelled]]),
                               len(present), graph=S)
            pred = present[lab]
        pred[labelled] = y[labelled]
        out[m] = float((pred == y).mean())
    return out


def clusters_named(X: np.ndarray, y: np.ndarray, C: int) -> float:
    from imgatlas import defaults
    from imgatlas.cluster import build_method
    from imgatlas.reduce import make_reducer

    Z = make_reducer(defaults.REDUCE, random_state=0).fit_transform(X.astype(np.float32))
    lab = build_method("kmeans", C, {}, 0).fit(Z).labels_
    right = sum(np.bincount(y[lab == c]).max() for c in np.unique(lab))
    return float(right / len(y))


def main() -> None:
    from imgatlas import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+",
                    default=["clothing", "rooms", "imagenette", "cifar10", "fashion-mnist"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_labels_"))
    rows = {}
    for ds in args.sets:
        ws = tmp / ds
        api.scan(SHARED / ds, ws, labels_from_folders=True)
        api.embed(ws)
        _, X, meta = api.load_features(ws)
        names = sorted({r["label"] for r in meta})
        y = np.array([names.index(r["label"]) for r in meta])
        C = len(names)
        t = time.perf_counter()
        ref = clusters_named(X, y, C)
        res = {p: [curve(X, y, C, p, s) for s in range(args.seeds)]
               for p in ("suggested", "random")}
        rows[ds] = {"n": len(y), "classes": C, "clusters": ref,
                    **{p: {m: float(np.mean([r[m] for r in v])) for m in BUDGETS}
                       for p, v in res.items()},
                    "seconds": time.perf_counter() - t}
        print(ds, rows[ds], flush=True)
    lines = preamble("numpy", "sklearn")
    lines += ["Share of every image labelled right after a person labels 1, 2, 5, 10 "
              "images per class and `label-propagate` spreads them (the person's labels "
              "count as right). *suggested*: rounds of `suggest-labels`; *random*: the same "
              f"budgets drawn at random. Both the mean of {args.seeds} seeds. *clusters*: the "
              "default clustering with k = classes, each cluster named by its majority. "
              "Dev data: the picking rule (typical images below 5 labels a class) was chosen "
              "on clothing and rooms.", "",
              "| set | images | clusters | picks | 1 | 2 | 5 | 10 |",
              "|---|---|---|---|---|---|---|---|"]
    for ds, r in rows.items():
        for p in ("suggested", "random"):
            cells = []
            for m in BUDGETS:
                v = r[p][m]
                better = p == "suggested" and v >= r["random"][m]
                cells.append(f"**{v:.3f}**" if better else f"{v:.3f}")
            head = (f"| {ds} | {r['n']} | {r['clusters']:.3f} |" if p == "suggested"
                    else "| | | |")
            lines.append(f"{head} {p} | " + " | ".join(cells) + " |")
    lines += ["", "Bold: suggested picks at or above random ones at that budget."]
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Few labels, the whole collection "
                      "(dev sets)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
