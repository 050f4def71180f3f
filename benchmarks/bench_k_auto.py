"""Choosing k: every candidate rule measured on every dev set and on their 46-class union.

Each set is embedded (default backbone) and reduced by the default pipeline; one k-means
sweep (k = 2..60, 3 restarts, on a seeded PCA-64 of the reduced space) feeds the one-shot
rules; the rule `--k auto` uses (cluster/_select.py: the L-method knee over 2..30, groups
split again where their parts are clearly better separated) runs as the product runs it,
with 3 seeds, beside two candidates issue 32 names: the same rule with the top of its range
growing with the collection (max(30, √(n/2))), and prediction strength (Tibshirani and
Walther 2005, the largest k at 0.8 or more, every k of a half from one merge tree). A k
within ±20 % of the number of classes counts as found; a leave-one-set-out table says which
rule the other sets would choose and whether it finds the one left out. Sketchy's sketches
stand in for a sketch collection (TU-Berlin is held out).

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

SETS = ["imagenette", "rooms", "clothing", "cifar10", "fashion-mnist", "sketchy/photo",
        "sketchy/sketch"]
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


def grown_top(n: int) -> int:
    """The top of a range that grows with the collection (issue 32's example)."""
    return int(max(30, round(np.sqrt(n / 2))))


def prediction_strength_k(X: np.ndarray, hi: int, seed: int, threshold: float = 0.8,
                          repeats: int = 2) -> int:
    """Tibshirani and Walther (2005): the largest k whose prediction strength (the worst
    test cluster's share of pairs that the training half's centres also put together,
    averaged over random halves) reaches ``threshold`` (theirs: 0.8-0.9). Every k of a
    half from one merge tree."""
    from imgatlas.cluster._select import merge_tree_fits

    rng = np.random.default_rng(seed)
    ks = list(range(2, hi + 1))
    strength = np.zeros(len(ks))
    for r in range(repeats):
        perm = rng.permutation(len(X))
        A, B = X[perm[: len(X) // 2]], X[perm[len(X) // 2:]]
        fa = {k: lab for k, _, lab in merge_tree_fits(A, ks, seed + r)}
        fb = {k: lab for k, _, lab in merge_tree_fits(B, ks, seed + r + 100)}
        for j, k in enumerate(ks):
            centres = np.stack([A[fa[k] == c].mean(0) if (fa[k] == c).any()
                                else np.full(X.shape[1], np.inf) for c in range(k)])
            pred = ((B[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
            worst = 1.0
            for c in range(k):
                m = np.flatnonzero(fb[k] == c)
                if len(m) >= 2:
                    cnt = np.bincount(pred[m], minlength=k)
                    worst = min(worst, float((cnt * (cnt - 1)).sum() / (len(m) * (len(m) - 1))))
            strength[j] += worst / repeats
    ok = [k for k, s in zip(ks, strength, strict=True) if s >= threshold]
    return max(ok) if ok else 2


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
        hi = grown_top(len(Z))
        row["--k auto, top of the range max(30, √(n/2))"] = [
            choose_k(Z, "kmeans", (2, hi), seed)["chosen_k"] for seed in args.seeds]
        Ps = P if len(P) <= 6000 else P[np.sort(np.random.default_rng(0).choice(
            len(P), 6000, replace=False))]
        row["prediction strength ≥ 0.8, 2..max(30, √(n/2))"] = [
            prediction_strength_k(Ps, hi, seed) for seed in args.seeds]
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
    lines += ["", "Leave-one-set-out: the rule that finds the most of the other sets (every "
              "seed), and whether it finds the one left out:", "",
              "| left out | rule chosen on the others | its k | found |", "|---|---|---|---|"]
    for left in table:
        def hits(rule: str, sets: list[str]) -> int:
            return sum(all(ok(k, table[s]["classes"]) for k in (
                table[s][rule] if isinstance(table[s][rule], list) else [table[s][rule]]))
                       for s in sets)
        best = max(rules, key=lambda ru: hits(ru, [s for s in table if s != left]))
        v = table[left][best]
        lines.append(f"| {left} | {best} | {v} | {bool(hits(best, [left]))} |")
    lines += ["", "Why, as the runs record it (seed 0):", ""]
    lines += [f"- {s}: {r}" for s, r in reasons.items()]
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Choosing k (dev sets and their "
                      "union)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
