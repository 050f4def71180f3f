"""Few labels -> the whole collection, on every labelled dev set, in one run.

A simulated person labels what ``suggest-labels`` proposes (rounds up to 1, 2, 5 and 10
labels per class: each round asks for the difference), and ``label-propagate`` labels
everything else: ``auto`` (the method the labels favour, cross-validated on them) and each
method forced, side by side; the same budgets picked at random, 3 seeds. Scored: the share
of every image of the collection whose label is right (the person's labels count as right).
Reference: the default clustering with k = the number of classes, each cluster named by its
majority (k labels, if a person could name a cluster at a glance).

The one rule chosen on these sets, the method used while no class has two labels (nothing
to cross-validate), is also chosen leave-one-set-out: on the other sets (the method with the
best mean at 1 label a class), scored on the set left out.

    python benchmarks/bench_labels.py [--sets clothing rooms imagenette cifar10 fashion-mnist]
        [--max-images 3000] [--seeds 3] [--second-backbone]

``--second-backbone``: Lite0's and Lite2's features side by side, as ``label-propagate``
reads them when the ``lite`` extra is installed (its own section in RESULTS).
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


def curve(X: np.ndarray, y: np.ndarray, C: int, picker: str, seed: int,
          cluster_X: np.ndarray | None = None) -> dict[str, dict[int, float]]:
    """``{method: {labels per class: accuracy over every image}}`` for one seed;
    ``auto_method`` holds the method auto chose at each budget. ``cluster_X``: the features
    the collection is clustered on when ``X`` holds two backbones side by side."""
    from imgatlas.classify._choose import ORDER, choose
    from imgatlas.classify._propagate import LabelSpace, propagate_proba
    from imgatlas.classify._suggest import suggest

    space = LabelSpace(X, seed=0, cluster_X=cluster_X)
    rng = np.random.default_rng(seed)
    labelled = np.array([], dtype=np.int64)
    out: dict[str, dict[int, float]] = {m: {} for m in ("auto", *ORDER)}
    out["auto_method"] = {}
    for m in BUDGETS:
        need = m * C - len(labelled)
        free = np.setdiff1d(np.arange(len(y)), labelled)
        if picker == "random":
            new = rng.choice(free, need, replace=False)
        else:
            new = np.array([p["row"] for p in suggest(X, labelled, y[labelled], need,
                                                      seed=seed, space=space)], np.int64)
        labelled = np.concatenate([labelled, new])
        present, yl = np.unique(y[labelled], return_inverse=True)
        chosen = choose(space, labelled, yl, seed=seed)["method"] if len(present) > 1 \
            else ORDER[0]
        out["auto_method"][m] = chosen
        for method in ORDER:
            if len(present) < 2:
                pred = np.full(len(y), present[0])
            else:
                pred = present[propagate_proba(method, space, labelled, yl,
                                               len(present)).argmax(1)]
            pred[labelled] = y[labelled]
            out[method][m] = float((pred == y).mean())
        out["auto"][m] = out[chosen][m]
    return out


def clusters_named(X: np.ndarray, y: np.ndarray, C: int) -> float:
    from imgatlas.classify._propagate import clustering_space
    from imgatlas.cluster import build_method

    lab = build_method("kmeans", C, {}, 0).fit(clustering_space(X, 0)).labels_
    right = sum(np.bincount(y[lab == c]).max() for c in np.unique(lab))
    return float(right / len(y))


def load(ds: str, tmp: Path, max_images: int, second: bool = False
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(X, y, cluster_X)``: the default features, or with ``second`` Lite0's and Lite2's
    side by side as ``label-propagate`` reads them with the lite extra (then ``cluster_X``
    holds Lite0's alone)."""
    from imgatlas import api, defaults
    from imgatlas.classify._features import read_features
    from imgatlas.store import Workspace

    ws = tmp / ds
    api.scan(SHARED / ds, ws, labels_from_folders=True)
    api.embed(ws)
    ids, X, meta = api.load_features(ws)
    X0 = None
    if second:
        api.embed(ws, backbone=defaults.SECOND_BACKBONE, make_default=False)
        with Workspace.open(ws) as w:
            base = w.pick_store()
            have, X = read_features([base, w.pick_store(defaults.SECOND_BACKBONE)], ids)
        assert np.array_equal(have, ids), "Lite2 lacks images Lite0 has"
        X0 = X[:, :base.dim]
    names = sorted({r["label"] for r in meta})
    y = np.array([names.index(r["label"]) for r in meta])
    if len(y) > max_images:  # a seeded, class-stratified sample
        from sklearn.model_selection import train_test_split

        keep = np.sort(train_test_split(np.arange(len(y)), train_size=max_images,
                                        stratify=y, random_state=0)[0])
        X, y = X[keep], y[keep]
        X0 = None if X0 is None else X0[keep]
    return np.asarray(X, np.float32), y, X0


def labelled_set_args(seeds: int) -> argparse.Namespace:
    """The options of the benchmarks over the labelled dev sets."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+",
                    default=["clothing", "rooms", "imagenette", "cifar10", "fashion-mnist"])
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--max-images", type=int, default=3000)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--second-backbone", action="store_true",
                    help="Lite0 and Lite2 side by side, as label-propagate with the lite extra")
    return ap.parse_args()


def main() -> None:
    from imgatlas.classify._choose import ORDER

    args = labelled_set_args(seeds=3)
    tmp = Path(tempfile.mkdtemp(prefix="bench_labels_"))
    rows = {}
    for ds in args.sets:
        X, y, X0 = load(ds, tmp, args.max_images, args.second_backbone)
        C = int(y.max() + 1)
        t = time.perf_counter()
        res = {p: [curve(X, y, C, p, s, X0) for s in range(args.seeds)]
               for p in ("suggested", "random")}
        rows[ds] = {"n": len(y), "classes": C,
                    "clusters": clusters_named(X if X0 is None else X0, y, C),
                    "seconds": time.perf_counter() - t}
        for p, runs in res.items():
            rows[ds][p] = {meth: {m: float(np.mean([r[meth][m] for r in runs]))
                                  for m in BUDGETS} for meth in ("auto", *ORDER)}
            rows[ds][p]["chosen"] = {m: [r["auto_method"][m] for r in runs] for m in BUDGETS}
        print(ds, {k: v for k, v in rows[ds].items()}, flush=True)

    lines = preamble("numpy", "sklearn")
    lines += [
        "Share of every image labelled right after a person labels 1, 2, 5, 10 images per "
        "class and `label-propagate` labels the rest (the person's labels count as right). "
        "*suggested*: rounds of `suggest-labels`; *random*: the same budgets drawn at "
        f"random; both the mean of {args.seeds} seeds. *auto* is what `label-propagate` "
        "does by default (the method that predicts the given labels best, folds held out; "
        "`clusters` while no class has two labels); the other rows force one method. "
        "*clusters named*: the default clustering with k = classes, each cluster named by "
        f"its majority. Sets above {args.max_images:,} images: a seeded stratified sample "
        "of that size. Dev data: the picking rule (typical images below 5 labels a class) "
        "was chosen on clothing and rooms; the method while nothing can be held out is "
        "chosen leave-one-set-out below." + (
            " Features: Lite0's and Lite2's side by side (as `label-propagate` reads them "
            "with the `lite` extra installed); the clusters and *clusters named* on Lite0's "
            "alone." if args.second_backbone else ""), "",
        "| set | images | clusters named | picks | method | 1 | 2 | 5 | 10 |",
        "|---|---|---|---|---|---|---|---|---|"]
    for ds, r in rows.items():
        first = True
        for p in ("suggested", "random"):
            for meth in ("auto", *ORDER):
                cells = []
                for m in BUDGETS:
                    v = r[p][meth][m]
                    better = (p == "suggested" and meth == "auto"
                              and v >= r["random"]["auto"][m])
                    cells.append(f"**{v:.3f}**" if better else f"{v:.3f}")
                head = (f"| {ds} | {r['n']} | {r['clusters']:.3f} |" if first else "| | | |")
                first = False
                lines.append(f"{head} {p} | {meth} | " + " | ".join(cells) + " |")
    lines += ["", "Bold: suggested picks with auto at or above random picks with auto.", "",
              "What auto chose with suggested picks (one per seed):", ""]
    for ds, r in rows.items():
        lines.append(f"- {ds}: " + "; ".join(
            f"{m}: {', '.join(r['suggested']['chosen'][m])}" for m in BUDGETS))
    lines += ["", "The method while no class has two labels, leave-one-set-out (chosen by "
              "the best mean at 1 suggested label a class on the other sets, scored on the "
              "one left out):", "",
              "| left out | chosen on the others | its accuracy | clusters named |",
              "|---|---|---|---|"]
    for ds in rows:
        others = [d for d in rows if d != ds]
        if not others:
            break
        best = max(ORDER, key=lambda meth: np.mean(
            [rows[d]["suggested"][meth][1] for d in others]))
        lines.append(f"| {ds} | {best} | {rows[ds]['suggested'][best][1]:.3f} | "
                     f"{rows[ds]['clusters']:.3f} |")
    if not args.no_write:
        title = "Few labels, the whole collection " + (
            "(dev sets, Lite0 and Lite2 side by side)" if args.second_backbone else "(dev sets)")
        write_section(ROOT / "benchmarks" / "RESULTS.md", title, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
