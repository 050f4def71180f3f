"""`index --sketch --adapt` (the line branch's last blocks distilled on the collection's
photos) against the default fitted map, on the dev Sketchy split by classes.

The library's own pieces run here on arrays (imgatlas.sketch._distill: the line maps, their
augmentation, the trunk's cached activations, the tail trained with early stopping on
held-out photos' line maps, never on sketches). Per split: 15 classes searched (their
photos fitted on, their sketches never seen; each sketch's own source photo left out of its
ranking), the other 15 classes' pairs only for the rows that say so:

  map (default)                  the fitted ridge map + shipped offset + query expansion
  distilled, sketch -> photo     the distilled network's features, nothing else
  distilled + map + ...          the fitted map on the distilled features, with no sketch
                                 offset / the shipped (undistilled) one / one measured on the
                                 other classes' pairs with the distilled network

    python benchmarks/bench_sketch_distill.py [--splits 4] [--views 2] [--epochs 6]

Writes the section "Query by sketch: distillation (dev Sketchy)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.preprocessing import normalize

from _common import ROOT, SHARED, preamble, write_section
from imgatlas._optional import import_torch
from imgatlas.backbones import VARIANTS, block_plan, build_graph, load_state_dict
from imgatlas.backbones.efficientnet_lite import weights_file
from imgatlas.embed import Embedder
from imgatlas.evaluate.retrieval import average_precision
from imgatlas.sketch import LineToPhotoMap, load_drawing, normalise_lines
from imgatlas.sketch._distill import (
    TUNE_BLOCKS,
    augmented_lines,
    fit_tail,
)
from imgatlas.sketch._lines import lines_image, photo_line_grey
from imgatlas.sketch._map import domain_shift, shipped_shift

SKETCHY = SHARED / "sketchy"
NAME = "efficientnet_lite0"
EXPAND = 5


def run_trunk(sess, output: str, images: list[np.ndarray]) -> np.ndarray:
    out = []
    for s in range(0, len(images), 32):
        (a,) = sess.run([output], {"pixels": np.stack(images[s:s + 32])})
        out.append(a.astype(np.float16))
    return np.concatenate(out)


def tail_features(torch, tail, A: np.ndarray) -> np.ndarray:
    tail.eval()
    with torch.no_grad():
        return np.concatenate([tail.features(torch.from_numpy(A[s:s + 256].astype(np.float32)))
                               .numpy() for s in range(0, len(A), 256)])


def mean_ap(Q: np.ndarray, G: np.ndarray, q_cls: np.ndarray, g_cls: np.ndarray,
            source: np.ndarray, expand: bool) -> float:
    """Sketch -> photo mAP by inner product, each query's source photo left out; optional
    average query expansion with the top EXPAND results."""
    sims = Q @ G.T
    sims[np.arange(len(Q)), source] = -np.inf
    if expand:
        top = np.argsort(-sims, axis=1)[:, :EXPAND]
        Q2 = normalize(Q + G[top].sum(1))
        sims = Q2 @ G.T
        sims[np.arange(len(Q)), source] = -np.inf
    order = np.argsort(-sims, axis=1)[:, :-1]  # the source photo (-inf) is last
    relevant = g_cls[order] == q_cls[:, None]
    n_relevant = (g_cls[None, :] == q_cls[:, None]).sum(1) - 1
    return float(np.mean(average_precision(relevant, n_relevant)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch = import_torch("the distillation benchmark")
    torch.manual_seed(0)
    import onnxruntime as ort

    from imgatlas import create_backbone

    t_all = time.perf_counter()
    classes = sorted(p.name for p in (SKETCHY / "photo").iterdir() if p.is_dir())
    photos, p_cls = [], []
    for c in classes:
        for f in sorted((SKETCHY / "photo" / c).glob("*.jpg")):
            photos.append(f)
            p_cls.append(c)
    p_cls = np.array(p_cls)
    stem = {(c, f.stem): i for i, (f, c) in enumerate(zip(photos, p_cls, strict=True))}
    sketches, s_cls, s_src = [], [], []
    for c in classes:
        for f in sorted((SKETCHY / "sketch" / c).glob("*.png")):
            src = stem.get((c, f.stem.rsplit("-", 1)[0]))
            if src is not None:
                sketches.append(f)
                s_cls.append(c)
                s_src.append(src)
    s_cls, s_src = np.array(s_cls), np.array(s_src)
    print(f"{len(photos)} photos, {len(sketches)} sketches, {len(classes)} classes")

    emb = Embedder(create_backbone(NAME))
    P = normalize(emb.embed_files([str(p) for p in photos]))
    t = time.perf_counter()
    greys = [photo_line_grey(p, "canny", None) for p in photos]
    line_maps = [lines_image(g) for g in greys]
    sketch_imgs = [normalise_lines(load_drawing(str(s)), 224) for s in sketches]
    t_lines = time.perf_counter() - t
    L0 = normalize(emb.features(np.stack(line_maps)))
    S0 = normalize(emb.features(np.stack(sketch_imgs)))

    variant = VARIANTS[NAME]
    weights = load_state_dict(weights_file(NAME))
    start = len(block_plan(variant)) - TUNE_BLOCKS
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        trunk_path = Path(tmp) / "trunk.onnx"
        build_graph(weights, variant, trunk_path, extra_outputs=(start - 1,), name=NAME)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(trunk_path), so, providers=["CPUExecutionProvider"])
        out = f"block{start - 1}"
        t = time.perf_counter()
        A_clean = run_trunk(sess, out, line_maps)
        A_sketch = run_trunk(sess, out, sketch_imgs)
        views = [[augmented_lines(g, rng) for _ in range(args.views)] for g in greys]
        A_views = run_trunk(sess, out, [v for vs in views for v in vs]).reshape(
            len(photos), args.views, *A_clean.shape[1:])
        t_trunk = time.perf_counter() - t
    print(f"line maps {t_lines:.1f} s, trunk activations {t_trunk:.1f} s "
          f"({len(photos) * (1 + args.views) + len(sketches)} images)")

    shipped = shipped_shift(NAME, "canny")
    rows: dict[str, list[float]] = {
        "map (default: fitted map + shipped offset + expansion)": [],
        "distilled, sketch -> photo": [],
        "distilled + map, no offset + expansion": [],
        "distilled + map + shipped offset + expansion": [],
        "distilled + map + offset from the other classes (distilled) + expansion": []}
    epochs_used, train_s, n_fit = [], [], 0
    for split in range(args.splits):
        perm = list(np.random.default_rng(split).permutation(classes))
        other, searched = sorted(perm[:15]), sorted(perm[15:])
        pa, pb = np.isin(p_cls, searched), np.isin(p_cls, other)
        sa, sb = np.isin(s_cls, searched), np.isin(s_cls, other)
        ga = np.flatnonzero(pa)
        src_a = np.searchsorted(ga, s_src[sa])

        def mapped(L: np.ndarray, S: np.ndarray, shift, pa=pa, sa=sa, src_a=src_a) -> float:
            m = LineToPhotoMap(sketch_shift=shift).fit(L[pa], P[pa])
            return mean_ap(m.transform(S[sa]), m.photos(P[pa]), s_cls[sa], p_cls[pa], src_a,
                           True)

        rows["map (default: fitted map + shipped offset + expansion)"].append(
            mapped(L0, S0, shipped))
        n_fit = int(pa.sum())
        acts = np.concatenate([A_clean[pa][:, None], A_views[pa]], axis=1)
        t = time.perf_counter()
        tail, history, before, best, _ = fit_tail(torch, weights, variant, start, acts,
                                                  P[pa], seed=split, epochs=args.epochs)
        train_s.append(time.perf_counter() - t)
        epochs_used.append(len(history))
        print(f"split {split}: held-out photos' loss {before:.4f} -> {best:.4f} in "
              f"{len(history)} epochs")
        L1 = normalize(tail_features(torch, tail, A_clean))
        S1 = normalize(tail_features(torch, tail, A_sketch))
        rows["distilled, sketch -> photo"].append(
            mean_ap(S1[sa], P[pa], s_cls[sa], p_cls[pa], src_a, False))
        rows["distilled + map, no offset + expansion"].append(mapped(L1, S1, None))
        rows["distilled + map + shipped offset + expansion"].append(mapped(L1, S1, shipped))
        rows["distilled + map + offset from the other classes (distilled) + expansion"].append(
            mapped(L1, S1, domain_shift(S1[sb], L1[pb])))
        print(f"split {split}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items()))

    per_1000 = (t_lines * 1000 / (len(photos) + len(sketches))
                + t_trunk * 1000 / (len(photos) * (1 + args.views) + len(sketches))
                * (1 + args.views) + statistics.mean(train_s) / n_fit * 1000)
    base = statistics.mean(rows["map (default: fitted map + shipped offset + expansion)"])
    lines = preamble("onnxruntime", "torch", "sklearn") + [
             f"Dev Sketchy, split by classes ({args.splits} seeded 15/15 splits): the last "
             f"{TUNE_BLOCKS} blocks and the head convolution of {NAME} distilled on the "
             f"searched classes' {n_fit} photos' line maps ({args.views} augmented views each "
             "beside the clean one: dropped strokes, a small affine warp, stroke width and "
             "margin) towards the photos' own features (cosine loss, AdamW, up to "
             f"{args.epochs} epochs, early stopping on 10 % of the photos held out: what "
             "`index --sketch --adapt` does). Each sketch's own source photo left out of its "
             "ranking; sketches of the searched classes are never seen.", "",
             "| path | mAP | vs the default map |", "|---|---|---:|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f} | "
                     f"{statistics.mean(v) / base:.2f}x |")
    lines += ["", f"Epochs run: {epochs_used}. Cost on this machine: trunk activations and "
              f"training about {per_1000:.0f} s per 1,000 photos ({statistics.mean(train_s):.0f} "
              f"s of training per split on {n_fit} photos), against "
              "0.25 s for the fitted map on 750 photos. Whole benchmark "
              f"{time.perf_counter() - t_all:.0f} s."]
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md",
                      "Query by sketch: distillation (dev Sketchy)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
