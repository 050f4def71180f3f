"""Choosing k: every candidate rule measured on every dev set and on their 46-class union.

Each set is embedded (default backbone) and reduced by the default pipeline; one k-means
sweep (k = 2..60, 3 restarts, on a seeded PCA-64 of the reduced space) feeds the one-shot
rules; the rule `--k auto` uses (cluster/_select.py: the L-method knee over 2..30, groups
split again where their parts are clearly better separated) runs as the product runs it,
with 3 seeds. A k within ±20 % of the number of classes counts as found.

    python benchmarks/bench_k_auto.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, preamble, write_section  # noqa: E402

SETS = ["imagenette", "rooms", "clothing", "cifar10", "fashion-mnist", "sketchy/photo"]
UNION = ["imagenette", "rooms", "clothing", "cifar10", "fashion-mnist"]


def features(tmp: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from imgatlas import api

    out = {}
    for ds in SETS:
        ws = tmp / ds.replace("/", "_")
        api.scan(SHARED / ds, ws, labels_from_folders=True)
        api.embed(ws)
        _, X, rows = api.load_features(ws)
        out[ds] = (X, np.array([f"{ds}:{r['label']}" for r in rows]))
    out["union of 5"] = (np.vstack([out[d][0] for d in UNION]),
                         np.concatenate([out[d][1] for d in UNION]))
    return out


def one_shot_rules(X: np.ndarray, n: int) -> dict[str, int]:
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    from imgatlas.cluster._select import _kmeans_fits
    from imgatlas.evaluate import find_elbow, l_method

    fits = _kmeans_fits(X, range(2, 61), 0)
    ks = [f[0] for f in fits]
    sse = np.array([f[1] for f in fits])
    sil = [silhouette_score(X, f[2], sample_size=min(2000, len(X)), random_state=0)
           for f in fits]
    ch = [calinski_harabasz_score(X, f[2]) for f in fits]
    db = [davies_bouldin_score(X, f[2]) for f in fits]
    grown = int(max(30, min(100, round(np.sqrt(n) / 2))))

    def upto(hi: int) -> tuple[list[int], np.ndarray]:
        m = [i for i, k in enumerate(ks) if k <= hi]
        return [ks[i] for i in m], sse[m]

    # the jump method (Sugar and James): the largest rise of 1 / SSE from k - 1 to k
    jump = np.diff(1.0 / sse)
    return {
        "SSE elbow 2..30": find_elbow(*upto(30)),
        "SSE elbow, grown range": find_elbow(*upto(grown)),
        "SSE elbow 2..60": find_elbow(ks, sse),
        "L-method 2..30": l_method(*upto(30)),
        "L-method 2..60": l_method(ks, sse),
        "best silhouette 2..60": ks[int(np.argmax(sil))],
        "best Calinski-Harabasz": ks[int(np.argmax(ch))],
        "best Davies-Bouldin": ks[int(np.argmin(db))],
        "jump method (Y=1)": ks[int(np.argmax(jump)) + 1],
    }


def main() -> None:
    from imgatlas import defaults
    from imgatlas.cluster._select import _project, choose_k
    from imgatlas.reduce import make_reducer

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_k_auto_"))
    table: dict[str, dict[str, object]] = {}
    reasons = {}
    for name, (X, y) in features(tmp).items():
        Z = make_reducer(defaults.REDUCE, random_state=0).fit_transform(X.astype(np.float32))
        n_cls = len(set(y.tolist()))
        P, _ = _project(Z, 64, 0)
        row: dict[str, object] = {"classes": n_cls, "images": len(Z)}
        row.update(one_shot_rules(P, len(Z)))
        chosen = []
        for seed in args.seeds:
            res = choose_k(Z, "kmeans", None, seed)
            chosen.append(res["chosen_k"])
            reasons.setdefault(name, res["reason"])
        row["--k auto (recursive L-method)"] = chosen
        table[name] = row
        print(name, row, flush=True)
    rules = [k for k in next(iter(table.values())) if k not in ("classes", "images")]

    def ok(k: int, c: int) -> bool:
        return abs(k - c) <= 0.2 * c

    lines = preamble("numpy", "sklearn")
    lines += ["Dev sets (k-means on the default reduction); a k within ±20 % of the number "
              "of classes is found (bold). The recursive rule's thresholds were chosen on "
              "these sets; the one-shot rules have none to choose.", "",
              "| rule | " + " | ".join(f"{s} ({r['classes']})" for s, r in table.items())
              + " | found |", "|---|" + "---|" * (len(table) + 1)]
    for rule in rules:
        cells, found = [], 0
        for r in table.values():
            v = r[rule]
            ks = v if isinstance(v, list) else [v]
            hits = [ok(k, r["classes"]) for k in ks]
            found += all(hits)
            text = ", ".join(str(k) for k in ks)
            cells.append(f"**{text}**" if all(hits) else text)
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {found}/{len(table)} |")
    lines += ["", "Why, as the runs record it (seed 0):", ""]
    lines += [f"- {s}: {r}" for s, r in reasons.items()]
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Choosing k (dev sets and their "
                      "union)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
