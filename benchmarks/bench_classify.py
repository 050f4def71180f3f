"""Classifier quality and cost on the labelled dev sets, through the real API.

For each set (default: clothing, rooms) and seed: ``imgatlas train`` in every mode on the
studies' protocol (stratified 70 % train / 30 % test, seeded; heads choose their
hyperparameters and temperature by cross-validation on the 70 % and are refitted on all of
it, finetune and cnn-small keep 20 % of it for validation);
test accuracy, balanced accuracy, ECE before/after temperature scaling, wall seconds and
CPU seconds of the training call. The test images are used for nothing but this score:
heads and variants are chosen on validation.

Then, labels: the accuracy of a logistic head trained on L labels chosen by
``suggest-labels`` (rounds of 10 % of the budget) against L labels chosen at random, scored
on the same test split; and the label-propagation curve (labels per class -> accuracy on
held-back labels).

    python benchmarks/bench_classify.py [--sets clothing,rooms] [--seeds 3]
        [--modes head,finetune,cnn-small] [--variants] [--skip-labels] [--render]

Every training result is appended to benchmarks/_work/classify-results.jsonl as it comes
(``--render`` rebuilds the tables from it without training again). Writes the section
"Classification (dev sets)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api

WORK = ROOT / "benchmarks" / "_work"
JSONL = WORK / "classify-results.jsonl"
# finetune variants compared with --variants (chosen on validation accuracy, never test)
VARIANTS = {"2 blocks, 4 views": {"tune_blocks": 2}, "4 blocks, 4 views (default)": {},
            "2 blocks, 8 views": {"tune_blocks": 2, "views": 8}}
# modes beyond the three of `--mode`: a head on two backbones' features side by side
# ("head" alone: Lite0's features only; "head lite0+lite2" is what `train` picks by default
# when the lite extra is installed)
EXTRA_MODES = {"head": {"features": "efficientnet_lite0"},
               "head lite0+lite2": {"mode": "head",
                                    "features": "efficientnet_lite0,efficientnet_lite2"}}


def prepare(name: str, lite2: bool = False) -> Path:
    ws = WORK / f"classify-{name}"
    if not (ws / "catalog.sqlite").exists():
        api.scan(SHARED / name, ws, labels_from_folders=True)
    if lite2:
        api.embed(ws, backbone="efficientnet_lite2", cache_dir=WORK / "cache")
    api.embed(ws, cache_dir=WORK / "cache")  # last: the default store stays the latest
    return ws


def timed_train(ws: Path, **kw) -> dict:
    t, c = time.perf_counter(), time.process_time()
    res = api.train(ws, cache_dir=WORK / "cache", **kw)
    res["wall"] = time.perf_counter() - t
    res["cpu"] = time.process_time() - c
    return res


def head_on_split(ws: Path, seed: int, features: str) -> dict:
    """The head as `train` makes it (cross-validated choices, refitted on every label it is
    given), given the 70 % training part as a labels file, scored on the 30 % test part."""
    import csv

    from imgatlas.classify._features import read_features
    from imgatlas.classify._model import open_model
    from imgatlas.classify._split import holdout_split
    from imgatlas.evaluate.classification import expected_calibration_error
    from imgatlas.store import Workspace

    with Workspace.open(ws) as w:
        rows = sorted(w.images(), key=lambda r: r.id)
        ids, X = read_features([w.pick_store(f) for f in features.split(",")],
                               np.array([r.id for r in rows]))
    by_id = {r.id: r for r in rows}
    y = np.array([by_id[int(i)].label for i in ids])
    split = holdout_split(list(y), seed=seed)
    train = np.concatenate([split.train, split.val])
    labels = WORK / f"labels-{ws.name}-{seed}.csv"
    with open(labels, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["sha256", "label"])
        out.writerows([by_id[int(ids[i])].sha256, y[i]] for i in train)
    res = timed_train(ws, labels=str(labels), mode="head", features=features, seed=seed,
                      name=f"bench-head-{seed}")
    model = open_model(res["model"])
    logits = model.logits_from_features(X[split.test])
    P1, P = model.probabilities(logits * model.temperature), model.probabilities(logits)
    yt = np.searchsorted(np.array(model.meta["classes"]), y[split.test])
    pred = P.argmax(1)
    recall = [float((pred[yt == c] == c).mean()) for c in np.unique(yt)]
    res["metrics"] = {"accuracy": float((pred == yt).mean()),
                      "balanced_accuracy": float(np.mean(recall)),
                      "val_accuracy": float(res["metrics"]["accuracy"]),  # the CV estimate
                      "ece_uncalibrated": expected_calibration_error(P1, yt),
                      "ece": expected_calibration_error(P, yt)}
    res["heads"] = {}
    return res


def label_budget_rows(ws: Path, seed: int) -> list[dict]:
    """Accuracy of a logistic head on L labels: suggested vs random, same test split."""
    from imgatlas.classify import LogisticHead
    from imgatlas.classify._propagate import suggest
    from imgatlas.classify._split import holdout_split

    ids, X, rows = api.load_features(ws)
    y = np.array([r["label"] for r in rows])
    split = holdout_split(list(y), seed=seed)
    pool = np.sort(np.concatenate([split.train, split.val]))  # what a person could label
    rng = np.random.default_rng(seed)
    out = []
    for budget in (10, 20, 50, 100, 200):
        rand = rng.choice(pool, budget, replace=False)
        chosen = np.array([], int)
        while len(chosen) < budget:  # rounds, as a person would label
            step = min(max(budget // 10, 5), budget - len(chosen))
            picks = suggest(X[pool], np.searchsorted(pool, chosen) if len(chosen) else
                            np.array([], int), y[chosen], step, seed=seed)
            chosen = np.sort(np.concatenate([chosen, pool[[p["row"] for p in picks]]]))
        row = {"budget": budget}
        for key, sel in (("suggested", chosen), ("random", rand)):
            if len(np.unique(y[sel])) < 2:
                row[key] = float("nan")
                continue
            h = LogisticHead().fit(X[sel], y[sel])
            row[key] = float((h.predict(X[split.test]) == y[split.test]).mean())
            row[f"{key}_classes"] = int(len(np.unique(y[sel])))
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="clothing,rooms")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--modes", default="head,head lite0+lite2,finetune,cnn-small")
    ap.add_argument("--variants", action="store_true",
                    help="also compare finetune variants (validation picks)")
    ap.add_argument("--skip-labels", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only rebuild the tables from classify-results.jsonl")
    ap.add_argument("--append", action="store_true",
                    help="add to classify-results.jsonl instead of starting it again")
    args = ap.parse_args()
    sets = [s for s in args.sets.split(",") if (SHARED / s).exists()]
    modes = args.modes.split(",")
    if not args.render:
        if not args.append:
            JSONL.unlink(missing_ok=True)
        for name in sets:
            ws = prepare(name, lite2=any(m in EXTRA_MODES for m in modes))
            for seed in range(args.seeds):
                for mode in modes:
                    configs = VARIANTS if mode == "finetune" and args.variants else {mode: {}}
                    for label, extra in configs.items():
                        key = f"finetune: {label}" if mode == "finetune" and args.variants \
                            else mode
                        kw = {"mode": mode, **extra, **EXTRA_MODES.get(mode, {})}
                        res = (head_on_split(ws, seed, kw["features"]) if kw["mode"] == "head"
                               else timed_train(ws, name=f"bench-{kw['mode']}-{seed}",
                                                seed=seed, **kw))
                        row = {"set": name, "seed": seed, "key": key,
                               "metrics": res["metrics"], "heads": res["heads"],
                               "wall": res["wall"], "cpu": res["cpu"]}
                        with open(JSONL, "a") as f:
                            f.write(json.dumps(row, default=str) + "\n")
                        m = res["metrics"]
                        print(f"{name} seed {seed} {key}: test {m['accuracy']:.3f} val "
                              f"{m['val_accuracy']:.3f} ECE {m['ece_uncalibrated']:.3f}->"
                              f"{m['ece']:.3f} {res['wall']:.0f}s wall {res['cpu']:.0f}s cpu",
                              flush=True)
    results: dict = {}
    for line in JSONL.read_text().splitlines():
        row = json.loads(line)
        results.setdefault((row["set"], row["key"]), []).append(row)
        if row["key"] == "head":
            for head, h in row["heads"].items():
                results.setdefault((row["set"], f"head: {head}"), []).append(
                    {"metrics": h, "wall": row["wall"], "cpu": row["cpu"]})
    n_seeds = len({(r["set"], r["seed"]) for rows in results.values() for r in rows
                   if "seed" in r}) // max(1, len(sets))
    lines = preamble("onnxruntime", "torch", "sklearn") + [
        f"Dev sets {', '.join(sets)}, {n_seeds} seeds (the split and the training are "
        "seeded). Protocol: stratified 70 % train / 30 % test; accuracy on the test images, "
        "which choose nothing. Heads: `train` given the 70 % as labels (hyperparameters and "
        "temperature by cross-validation on them, then refitted on all of them; their *val* "
        "column is that cross-validated estimate). finetune and cnn-small: 20 % of the 70 % "
        "for validation, which picks variants and epochs. ECE: expected calibration error "
        "on the test images, before -> after temperature scaling. Times: the whole "
        "`imgatlas.train` call (wall, and CPU seconds "
        "of every thread) on the 2-core machine; the features were embedded beforehand "
        "except where the mode reads pixels. These are dev sets, the held-out figures "
        "of the issue are measured elsewhere.", "",
        "| set | mode | test accuracy (mean ± sd) | balanced | val accuracy | ECE before -> "
        "after | wall s | CPU s |", "|---|---|---|---|---|---|---:|---:|"]
    for (name, key), rows in sorted(results.items()):
        acc = [r["metrics"]["accuracy"] for r in rows]
        bal = [r["metrics"]["balanced_accuracy"] for r in rows]
        val = [r["metrics"]["val_accuracy"] for r in rows]
        e0 = [r["metrics"]["ece_uncalibrated"] for r in rows]
        e1 = [r["metrics"]["ece"] for r in rows]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        lines.append(f"| {name} | {key} | **{np.mean(acc):.3f}** ± {sd:.3f} | "
                     f"{np.mean(bal):.3f} | {np.mean(val):.3f} | {np.mean(e0):.3f} -> "
                     f"{np.mean(e1):.3f} | {np.mean([r['wall'] for r in rows]):.0f} | "
                     f"{np.mean([r['cpu'] for r in rows]):.0f} |")
    if not args.skip_labels:
        lines += ["", "Labels chosen by `suggest-labels` (rounds of a tenth of the budget, at "
                  "least 5) against labels chosen at random from the same pool (train + "
                  "validation images), a logistic head on each, scored on the test images; "
                  "mean over seeds (classes covered in brackets):", "",
                  "| set | labels | suggested | random |", "|---|---:|---|---|"]
        for name in sets:
            ws = prepare(name)
            per = [label_budget_rows(ws, seed) for seed in range(args.seeds)]
            for k, row in enumerate(per[0]):
                s = [p[k]["suggested"] for p in per]
                r = [p[k]["random"] for p in per]
                sc = np.mean([p[k].get("suggested_classes", 0) for p in per])
                rc = np.mean([p[k].get("random_classes", 0) for p in per])
                lines.append(f"| {name} | {row['budget']} | {np.nanmean(s):.3f} ({sc:.1f}) | "
                             f"{np.nanmean(r):.3f} ({rc:.1f}) |")
        lines += ["", "Label propagation (`label-propagate`): seeds drawn from the folder "
                  "labels, accuracy on the held-back labelled images, 3 draws:", "",
                  "| set | labels per class | spreading + head, self-trained | spreading "
                  "alone | head alone |", "|---|---:|---|---|---|"]
        for name in sets:
            res = api.label_propagate(prepare(name), labels="folders")
            for c in res["curve"]:
                lines.append(f"| {name} | {c['labels_per_class']} | **{c['propagate']:.3f}** "
                             f"± {c['propagate_sd']:.3f} | {c['spreading']:.3f} | "
                             f"{c['head']:.3f} |")
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Classification (dev sets)",
                  "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
