"""How ``label-propagate --method auto`` chooses, against every fixed method and against
rules with an order fitted on the dev sets, leave-one-set-out.

For each dev set (sets above ``--max-images`` as a seeded stratified sample), a simulated
person labels rounds of ``suggest-labels`` up to 1, 2, 5 and 10 labels a class (2 seeds);
at each budget every method's accuracy over the whole collection is measured (the truth a
chooser cannot see), and so is every method's out-of-fold accuracy on the labels (what it
can see: stratified k-fold, as ``choose`` does). Rules compared: *argmax* (the shipped one:
the best out-of-fold accuracy, ties to the fixed order), each fixed method, and the
one-standard-error rule under each of the 24 orders of the methods; the best rule on the
other sets is scored on the set left out.

    python benchmarks/bench_label_choice.py [--sets ...] [--seeds 2] [--max-images 3000]
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, preamble, write_section  # noqa: E402
from bench_labels import BUDGETS, labelled_set_args, load  # noqa: E402


def records(X: np.ndarray, y: np.ndarray, seeds: int) -> list[dict]:
    from sklearn.model_selection import StratifiedKFold

    from imgatlas.classify._choose import FOLDS, ORDER
    from imgatlas.classify._propagate import LabelSpace, propagate_proba
    from imgatlas.classify._suggest import suggest

    C = int(y.max() + 1)
    space = LabelSpace(X, 0)
    out = []
    for s in range(seeds):
        L = np.array([], np.int64)
        for m in BUDGETS:
            new = [p["row"] for p in suggest(X, L, y[L], m * C - len(L), seed=s, space=space)]
            L = np.concatenate([L, np.array(new, np.int64)])
            present, yl = np.unique(y[L], return_inverse=True)
            true = {}
            for meth in ORDER:
                pred = present[propagate_proba(meth, space, L, yl, len(present)).argmax(1)]
                pred[L] = y[L]
                true[meth] = float((pred == y).mean())
            counts = np.bincount(yl)
            oof = None
            if (counts >= 2).sum() >= 2:
                usable = np.flatnonzero(counts >= 2)
                held = np.flatnonzero(np.isin(yl, usable))
                always = np.flatnonzero(~np.isin(yl, usable))
                k = int(min(FOLDS, counts[usable].min()))
                oof = {meth: 0 for meth in ORDER}
                for tr, te in StratifiedKFold(k, shuffle=True, random_state=s).split(
                        held, yl[held]):
                    train = np.concatenate([held[tr], always])
                    for meth in ORDER:
                        P = propagate_proba(meth, space, L[train], yl[train], len(present))
                        oof[meth] += int((P[L[held[te]]].argmax(1) == yl[held[te]]).sum())
                oof = {meth: v / len(held) for meth, v in oof.items()} | {"n": len(held)}
            out.append({"seed": s, "m": m, "true": true, "oof": oof})
    return out


def pick(r: dict, rule: str, order: tuple[str, ...]) -> str:
    if r["oof"] is None:
        return "clusters"
    acc = {m: r["oof"][m] for m in order}
    if rule == "argmax":
        return max(order, key=lambda m: (acc[m], -order.index(m)))
    if rule == "1se":
        best = max(acc.values())
        se = np.sqrt(best * (1 - best) / r["oof"]["n"])
        return next(m for m in order if acc[m] >= best - se)
    return rule.split(":", 1)[1]


def main() -> None:
    from imgatlas.classify._choose import ORDER

    args = labelled_set_args(seeds=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench_label_choice_"))
    recs = {}
    for ds in args.sets:
        X, y, _ = load(ds, tmp, args.max_images)
        recs[ds] = records(X, y, args.seeds)
        print(ds, "done", flush=True)
    rules = [("argmax", ORDER)] + [(f"fixed:{m}", ORDER) for m in ORDER] + [
        ("1se", o) for o in itertools.permutations(ORDER)]

    def score(rule: tuple[str, tuple[str, ...]], ds: str, m: int | None = None) -> float:
        rows = [r for r in recs[ds] if m is None or r["m"] == m]
        return float(np.mean([r["true"][pick(r, *rule)] for r in rows]))

    def name(rule: tuple[str, tuple[str, ...]]) -> str:
        return f"1se ({', '.join(rule[1])})" if rule[0] == "1se" else rule[0]

    lines = preamble("numpy", "sklearn")
    lines += ["Share of the whole collection labelled right after rounds of `suggest-labels` "
              f"(1, 2, 5, 10 a class; {args.seeds} seeds), by the method each rule picks "
              "from the out-of-fold accuracies on the labels; *oracle*: the best method "
              "known from the truth. Mean over the budgets. Dev sets, sets above "
              f"{args.max_images:,} images sampled.", "",
              "| rule | " + " | ".join(args.sets) + " | mean |",
              "|---|" + "---|" * (len(args.sets) + 1)]
    oracle = {ds: float(np.mean([max(r["true"].values()) for r in recs[ds]]))
              for ds in args.sets}
    shown = [("argmax", ORDER)] + [(f"fixed:{m}", ORDER) for m in ORDER] + [
        ("1se", ("self-training", "clusters", "head", "spreading"))]
    for rule in shown:
        vals = [score(rule, ds) for ds in args.sets]
        lines.append(f"| {name(rule)} | " + " | ".join(f"{v:.3f}" for v in vals)
                     + f" | {np.mean(vals):.3f} |")
    lines.append("| oracle | " + " | ".join(f"{oracle[d]:.3f}" for d in args.sets)
                 + f" | {np.mean(list(oracle.values())):.3f} |")
    lines += ["", "By budget (mean over the sets):", "",
              "| rule | " + " | ".join(str(m) for m in BUDGETS) + " |",
              "|---|" + "---|" * len(BUDGETS)]
    for rule in shown:
        lines.append(f"| {name(rule)} | " + " | ".join(
            f"{np.mean([score(rule, d, m) for d in args.sets]):.3f}" for m in BUDGETS) + " |")
    lines += ["", "Leave-one-set-out: the rule (of all 29) best on the other sets, scored on "
              "the one left out, beside argmax:", "",
              "| left out | rule chosen on the others | its score | argmax |",
              "|---|---|---|---|"]
    loso = []
    for left in args.sets:
        others = [d for d in args.sets if d != left]
        best = max(rules, key=lambda ru: np.mean([score(ru, d) for d in others]))
        loso.append((score(best, left), score(("argmax", ORDER), left)))
        lines.append(f"| {left} | {name(best)} | {loso[-1][0]:.3f} | {loso[-1][1]:.3f} |")
    lines.append(f"| mean | | {np.mean([a for a, _ in loso]):.3f} | "
                 f"{np.mean([b for _, b in loso]):.3f} |")
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md",
                      "Few labels: choosing how to spread them (dev sets)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
