"""Query by sketch on the dev Sketchy set (30 classes, 25 photos and 25 sketches each),
through the real API (scan -> embed -> index --sketch -> evaluate-sketch).

1. No adapter, all 30 classes: the sketch as a photo (what `search` did before: the
   baseline), the shared line domain per detector, lines fused with the photo domain, with
   and without query-time augmentation, compact codes.
2. Zero-shot adapter: the classes are split in halves (seeded, 4 splits); `train-sketch`
   learns on one half's pairs, and the sketches of the other half search a workspace holding
   only that half's photos (classes it never saw); the baseline and the no-adapter path on
   the same half, side by side.

    python benchmarks/bench_sketch.py [--splits 4]

Writes the section "Query by sketch (dev Sketchy)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn.preprocessing import normalize

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api
from imgatlas.evaluate.retrieval import average_precision

SKETCHY = SHARED / "sketchy"
WORK = ROOT / "benchmarks" / "_work"
CACHE = WORK / "cache"


def photo_workspace(root: Path, classes: list[str], ws: Path) -> Path:
    """A workspace of the photos of ``classes`` (symlinked folders: the class is the
    folder, as a user's collection would be)."""
    src = root / "photos"
    src.mkdir(parents=True, exist_ok=True)
    for c in classes:
        if not (src / c).exists():
            os.symlink(SKETCHY / "photo" / c, src / c)
    api.scan(src, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=CACHE)
    return ws


def sketch_dir(root: Path, classes: list[str]) -> Path:
    d = root / "sketches"
    d.mkdir(parents=True, exist_ok=True)
    for c in classes:
        if not (d / c).exists():
            os.symlink(SKETCHY / "sketch" / c, d / c)
    return d


def plain_baseline(ws: Path, sketches: Path) -> float:
    """Each sketch embedded as if it were a photo, against the photos' features: what
    `imgatlas search SKETCH.png` does without the sketch path."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import Embedder

    ids, X, rows = api.load_features(ws)
    labels = np.array([r["label"] for r in rows])
    files = [(str(f), c.name) for c in sorted(sketches.iterdir()) for f in sorted(c.iterdir())]
    Q = Embedder(create_backbone("efficientnet_lite0", cache_dir=CACHE)).embed_files(
        [f for f, _ in files])
    S = normalize(Q) @ normalize(X).T
    qy = np.array([c for _, c in files])
    rel = labels[np.argsort(-S, axis=1)] == qy[:, None]
    return float(average_precision(rel, rel.sum(1)).mean())


def sketch_map(ws: Path, sketches: Path, **kw) -> dict:
    return api.evaluate_sketch(ws, sketches, cache_dir=CACHE, **kw)


def line_only_map(ws: Path, sketches: Path, detector: str) -> float:
    """Sketches against the photos' line maps alone (no photo domain)."""
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import Embedder
    from imgatlas.sketch._features import sketch_features
    from imgatlas.sketch._stage import embed_lines, line_store
    from imgatlas.store import Workspace

    with Workspace.open(ws, write=True) as w:
        embed_lines(w, detector=detector, cache_dir=CACHE)
        ids, L = line_store(w, detector=detector).read()
        info = w.display_and_label()
    labels = np.array([info[int(i)][1] for i in ids])
    files = [(str(f), c.name) for c in sorted(sketches.iterdir()) for f in sorted(c.iterdir())]
    emb = Embedder(create_backbone("efficientnet_lite0", cache_dir=CACHE))
    Q = sketch_features(emb, [f for f, _ in files], tta=False)
    S = Q @ normalize(L).T
    qy = np.array([c for _, c in files])
    rel = labels[np.argsort(-S, axis=1)] == qy[:, None]
    return float(average_precision(rel, rel.sum(1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=4)
    args = ap.parse_args()
    classes = sorted(p.name for p in (SKETCHY / "photo").iterdir())
    tmp = Path(tempfile.mkdtemp(prefix="imgatlas-sketch-", dir=WORK if WORK.exists() else None))
    lines = preamble("onnxruntime", "torch") + [
        f"Dev Sketchy: {len(classes)} classes x 25 photos (the gallery) and 25 sketches (the "
        "queries); relevance = same class; mAP over every sketch. Backbone: "
        "efficientnet_lite0. These are the dev classes; the held-out figures of the issue are "
        "measured elsewhere on classes this set does not have.", ""]
    try:
        root = tmp / "all"
        ws = photo_workspace(root, classes, root / "ws")
        sk = sketch_dir(root, classes)
        rows = [("sketch as a photo (the baseline: `search` before)", plain_baseline(ws, sk),
                 None, None)]
        for det in ("canny", "xdog", "edge-drawing"):
            rows.append((f"line domain only, {det}", line_only_map(ws, sk, det), None, None))
        for codes in ("float", "itq:256", "pq:64"):
            api.build_index(ws, sketch=True, codes=codes, cache_dir=CACHE)
            for tta in (False, True) if codes == "float" else (False,):
                r = sketch_map(ws, sk, tta=tta, codes=codes)
                rows.append((f"photo domain + canny lines, fused (`{codes}`"
                             f"{', mirror + 3 scales TTA' if tta else ''})", r["map"],
                             r["ms_per_query_p50"], r["bytes_per_image"]))
        lines += ["All 30 classes, no adapter:", "",
                  "| variant | mAP | ms / query (p50) | bytes / image |", "|---|---:|---:|---:|"]
        for name, m, ms, b in rows:
            lines.append(f"| {name} | {m:.3f} | {'' if ms is None else f'{ms:.1f}'} | "
                         f"{'' if b is None else f'{b:g}'} |")
        # zero-shot: train on one half of the classes, search the other
        zs = []
        for split in range(args.splits):
            perm = list(np.random.default_rng(split).permutation(classes))
            train_cls, test_cls = sorted(perm[:15]), sorted(perm[15:])
            root = tmp / f"split{split}"
            ws = photo_workspace(root, test_cls, root / "ws")
            sk = sketch_dir(root, test_cls)
            base = plain_baseline(ws, sk)
            api.build_index(ws, sketch=True, cache_dir=CACHE)
            fused = sketch_map(ws, sk)
            ad = api.train_sketch(ws, SKETCHY, name="adapter", classes=train_cls, seed=split,
                                  cache_dir=CACHE)
            api.build_index(ws, sketch=True, adapter=ad["model"], cache_dir=CACHE)
            adapted = sketch_map(ws, sk, adapter=ad["model"])
            zs.append((base, fused["map"], adapted["map"], adapted["p_at_10"],
                       adapted["mrr"], ad["seconds"]))
            print(f"split {split}: baseline {base:.3f} fused {fused['map']:.3f} adapter "
                  f"{adapted['map']:.3f} (trained in {ad['seconds']:.0f}s)", flush=True)
        z = np.array(zs)
        lines += ["", f"Zero-shot: the adapter trained on 15 classes' pairs (`train-sketch "
                  "--classes`), the other 15 classes' sketches searching their photos; "
                  f"{args.splits} seeded splits, mean ± sd (chance: about 0.07):", "",
                  "| path | mAP | vs baseline |", "|---|---|---:|"]
        for k, name in enumerate(("sketch as a photo (baseline)", "no adapter: photo domain "
                                  "+ line domain", "adapter (zero-shot) + line domain")):
            sd = statistics.stdev(z[:, k]) if len(z) > 1 else 0.0
            lines.append(f"| {name} | **{z[:, k].mean():.3f}** ± {sd:.3f} | "
                         f"{z[:, k].mean() / z[:, 0].mean():.2f}x |")
        lines += ["", f"With the adapter: P@10 {z[:, 3].mean():.3f}, MRR {z[:, 4].mean():.3f}; "
                  f"training the adapter took {z[:, 5].mean():.0f} s on 2 cores (embedding "
                  "the 375 photos and 375 sketches included)."]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Query by sketch (dev Sketchy)",
                  "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
