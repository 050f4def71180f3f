"""Query by sketch on the dev Sketchy set (30 classes, 25 photos and 25 sketches each),
through the real API (scan -> embed -> index --sketch -> evaluate-sketch).

1. All 30 classes: the sketch as a photo, the photo and line domains fused (the previous
   default), each domain centred, then the line->photo map fitted on the photos (with and
   without query expansion and query-time augmentation, compact codes).
2. Split by classes (seeded halves, 4 splits): one half's photos are the collection (the map
   is fitted on them, their sketches query them), the other half's pairs give the sketch
   domain's offset and train the adapter (`train-sketch --classes`): classes they never
   saw.

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


def photo_workspace(root: Path, classes: list[str], ws: Path,
                    precision: str = "auto") -> Path:
    """A workspace of the photos of ``classes`` (symlinked folders: the class is the
    folder, as a user's collection would be)."""
    src = root / "photos"
    src.mkdir(parents=True, exist_ok=True)
    for c in classes:
        if not (src / c).exists():
            os.symlink(SKETCHY / "photo" / c, src / c)
    api.scan(src, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=CACHE, precision=precision)
    return ws


def sketch_dir(root: Path, classes: list[str]) -> Path:
    d = root / "sketches"
    d.mkdir(parents=True, exist_ok=True)
    for c in classes:
        if not (d / c).exists():
            os.symlink(SKETCHY / "sketch" / c, d / c)
    return d


def _rel(ws: Path, sketches: list[tuple[str, str]], ids: np.ndarray, S: np.ndarray
         ) -> float:
    """mAP of similarity rows ``S`` (sketches x ``ids``), each sketch's own source photo left
    out (the protocol of evaluate-sketch --exclude-source-photo)."""
    from imgatlas.store import Workspace

    with Workspace.open(ws) as w:
        info = w.display_and_label()
    labels = np.array([info[int(i)][1] for i in ids])
    stems = np.array([Path(info[int(i)][0]).stem for i in ids])
    qy = np.array([c for _, c in sketches])
    own = np.array([Path(f).stem.rsplit("-", 1)[0] for f, _ in sketches])[:, None] == \
        stems[None, :]
    S = np.where(own, -np.inf, S)
    rel = np.take_along_axis((labels[None, :] == qy[:, None]) & ~own,
                             np.argsort(-S, axis=1), axis=1)
    return float(average_precision(rel, rel.sum(1)).mean())


def sketch_files(sketches: Path) -> list[tuple[str, str]]:
    return [(str(f), c.name) for c in sorted(sketches.iterdir()) for f in sorted(c.iterdir())]


def features_of(ws: Path, sketches: Path) -> dict:
    """The photos' features, their line maps' and the sketches' (as the sketch index embeds
    them), for the variants computed outside the index."""
    from imgatlas.embed import Embedder
    from imgatlas.index._search import store_backbone
    from imgatlas.sketch._features import sketch_features
    from imgatlas.sketch._stage import embed_lines, line_store
    from imgatlas.store import Workspace

    files = sketch_files(sketches)
    with Workspace.open(ws, write=True) as w:
        embed_lines(w, cache_dir=CACHE)
        ids, L = line_store(w).read()
        _, P = w.pick_store().read(ids)
        info = w.display_and_label()
        emb = Embedder(store_backbone(w.pick_store(), CACHE))
        Q = Embedder(store_backbone(w.pick_store(), CACHE)).embed_files([f for f, _ in files])
    S = np.concatenate([sketch_features(emb, [f for f, _ in files[i:i + 64]], tta=False)
                        for i in range(0, len(files), 64)])
    return {"ids": ids, "P": normalize(P), "L": normalize(L), "S": S, "Q": normalize(Q),
            "files": files, "s_cls": np.array([c for _, c in files]),
            "p_cls": np.array([info[int(i)][1] for i in ids])}


def variants(ws: Path, f: dict) -> dict[str, float]:
    """The paths before the fitted map, on the same features: the sketch as a photo, the
    photo and line domains fused (the previous default), each domain centred on its own
    mean (the sketch domain's mean from the sketches themselves: an upper bound)."""
    P, L, S, Q = f["P"], f["L"], f["S"], f["Q"]
    Pc, Sc = P - P.mean(0), S - S.mean(0)
    return {"sketch as a photo (`search SKETCH.png`)": _rel(ws, f["files"], f["ids"], Q @ P.T),
            "photo + line domains fused, no map (the previous `index --sketch`)":
                _rel(ws, f["files"], f["ids"], S @ P.T + S @ L.T),
            "each domain centred on its own mean, no map": _rel(
                ws, f["files"], f["ids"], normalize(Sc) @ normalize(Pc).T)}


def build(ws: Path, **kw) -> dict:
    """index --sketch through the stage (the bench passes the sketch offset measured on the
    other classes, which the CLI takes from the package)."""
    from imgatlas.sketch._stage import build_sketch_index
    from imgatlas.store import Workspace

    with Workspace.open(ws, write=True) as w:
        return build_sketch_index(w, cache_dir=CACHE, **kw)


def evaluate(ws: Path, sketches: Path, **kw) -> dict:
    return api.evaluate_sketch(ws, sketches, cache_dir=CACHE, exclude_source=True, **kw)


def main() -> None:
    from imgatlas.sketch._map import domain_shift

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=4)
    args = ap.parse_args()
    classes = sorted(p.name for p in (SKETCHY / "photo").iterdir())
    tmp = Path(tempfile.mkdtemp(prefix="imgatlas-sketch-", dir=WORK if WORK.exists() else None))
    lines = preamble("onnxruntime", "torch", "sklearn") + [
        f"Dev Sketchy: {len(classes)} classes x 25 photos (the gallery) and 25 sketches (the "
        "queries); relevance = same class; mAP over every sketch, **each sketch's own source "
        "photo left out of its ranking** (`evaluate-sketch --exclude-source-photo`: no "
        "instance match counts). Backbone: efficientnet_lite0. The map is always fitted on "
        "the photos being searched (what `index --sketch` has); the sketches are never seen "
        "by it. These are the dev classes; the held-out figures of the issue are measured "
        "elsewhere on classes this set does not have.", ""]
    try:
        root = tmp / "all"
        ws = photo_workspace(root, classes, root / "ws")
        sk = sketch_dir(root, classes)
        everything = features_of(ws, sk)
        rows = [(k, v, None, None, None) for k, v in variants(ws, everything).items()]
        res = build(ws)
        for codes in ("float", "itq:256", "pq:64"):
            if codes != "float":
                res = build(ws, codes=codes)
            for expand, tta in ((True, False), (False, False), (True, True)) \
                    if codes == "float" else ((True, False),):
                r = evaluate(ws, sk, tta=tta, codes=codes, expand=expand)
                what = ("fitted map" + (" + query expansion" if expand else "") +
                        (", mirror + 3 scales TTA" if tta else ""))
                rows.append((f"{what} (`{codes}`)", r["map"], r["ms_per_query_p50"],
                             r["bytes_per_image"], res["map"]["fit_seconds"]))
        lines += ["All 30 classes (the sketch offset is the shipped one, measured on these "
                  "same 30 classes' pairs: an upper bound; the split below measures it on "
                  "other classes):", "",
                  "| variant | mAP | ms / query (p50) | bytes / image | map fit s |",
                  "|---|---:|---:|---:|---:|"]
        for name, m, ms, b, fit in rows:
            lines.append(f"| {name} | {m:.3f} | {'' if ms is None else f'{ms:.1f}'} | "
                         f"{'' if b is None else f'{b:g}'} | "
                         f"{'' if fit is None else f'{fit:.2f}'} |")
        # split by classes: the offset (and the adapter) from one half, search the other
        keys = ("sketch as a photo", "fused, no map (previous default)",
                "map, no sketch offset", "map + offset from the other classes",
                "map + offset + query expansion (**default**)",
                "adapter (other classes' pairs) + map + offset + expansion")
        zs = []
        for split in range(args.splits):
            perm = list(np.random.default_rng(split).permutation(classes))
            train_cls, test_cls = sorted(perm[:15]), sorted(perm[15:])
            tr = np.isin(everything["s_cls"], train_cls)
            trp = np.isin(everything["p_cls"], train_cls)
            shift = domain_shift(everything["S"][tr], everything["L"][trp])
            root = tmp / f"split{split}"
            ws = photo_workspace(root, test_cls, root / "ws")
            sk = sketch_dir(root, test_cls)
            before = list(variants(ws, features_of(ws, sk)).values())
            build(ws, shift=np.zeros_like(shift))
            no_shift = evaluate(ws, sk, expand=False)["map"]
            build(ws, shift=shift)
            plain = evaluate(ws, sk, expand=False)["map"]
            best = evaluate(ws, sk)
            ad = api.train_sketch(ws, SKETCHY, name="adapter", classes=train_cls, seed=split,
                                  cache_dir=CACHE)
            build(ws, shift=shift, adapter=ad["model"])
            adapted = evaluate(ws, sk, adapter=ad["model"])["map"]
            zs.append((before[0], before[1], no_shift, plain, best["map"], adapted,
                       best["p_at_10"], best["mrr"]))
            print(f"split {split}: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                 zip(keys, zs[-1], strict=False)), flush=True)
        z = np.array(zs)
        lines += ["", "Split by classes: the 15 classes searched (their photos fitted on, "
                  "their sketches never seen) and 15 others, whose pairs give the sketch "
                  "offset and train the adapter (`train-sketch --classes`); "
                  f"{args.splits} seeded splits, mean ± sd (chance: about 0.07):", "",
                  "| path | mAP | vs sketch as a photo |", "|---|---|---:|"]
        for k, name in enumerate(keys):
            sd = statistics.stdev(z[:, k]) if len(z) > 1 else 0.0
            lines.append(f"| {name} | {z[:, k].mean():.3f} ± {sd:.3f} | "
                         f"{z[:, k].mean() / z[:, 0].mean():.2f}x |")
        lines += ["", f"Default path: P@10 {z[:, 6].mean():.3f}, MRR {z[:, 7].mean():.3f}."]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Query by sketch (dev Sketchy)",
                  "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
