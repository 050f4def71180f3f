"""Distilling the line branch's last blocks (issue: query by sketch, second try), measured
against the default fitted map on the dev Sketchy split by classes.

The photo side is the teacher and stays frozen: the last TUNE_BLOCKS blocks and the head
convolution of a copy of EfficientNet-Lite0 learn, from the collection's own photos' line
maps (augmented: stroke width, margin, dropped strokes, a small affine deformation), to land
where the photo lands (cosine loss to the photo's features). The trunk before them runs
once in ONNX Runtime and its activations are cached (the `train --mode finetune`
machinery). No sketch and no label is used to train; the other 15 classes' sketch pairs
give the sketch offset and pick the epoch (early stopping on their sketch->photo mAP).

Per split (15 classes searched, their photos fitted on, their sketches never seen; each
sketch's own source photo left out of its ranking):
  map (default)            the fitted ridge map + offset + query expansion on shipped features
  distilled                the tuned tail's features, sketch -> photo directly
  distilled + map          the fitted map on top of the tuned tail's features (+ offset, QE)

    python benchmarks/bench_sketch_distill.py [--splits 4] [--views 4] [--epochs 8]

Writes the section "Query by sketch: distillation (dev Sketchy)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.preprocessing import normalize

from _common import ROOT, SHARED, preamble, write_section
from imgatlas._optional import import_torch
from imgatlas.backbones import VARIANTS, block_plan, build_graph, load_state_dict
from imgatlas.backbones.efficientnet_lite import weights_file
from imgatlas.classify._lite_torch import build_tail
from imgatlas.decode import decode_rgb, open_image
from imgatlas.embed import Embedder
from imgatlas.evaluate.retrieval import average_precision
from imgatlas.sketch import LINE_DETECTORS, LineToPhotoMap, load_drawing, normalise_lines
from imgatlas.sketch._lines import WORK
from imgatlas.sketch._map import domain_shift

SKETCHY = SHARED / "sketchy"
NAME = "efficientnet_lite0"
TUNE_BLOCKS = 4
EXPAND = 5


def line_grey(path: Path) -> np.ndarray:
    """The photo's line drawing (dark on white) at the detector's working size."""
    with open_image(path, None) as img:
        w, h = img.size
    s = min(1.0, WORK * 1.25 / max(w, h))
    rgb = decode_rgb(path, (max(1, round(w * s)), max(1, round(h * s))))
    return LINE_DETECTORS["canny"].factory(rgb)


def augmented(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clean line map made to look more drawn: strokes dropped, a small affine warp, a
    random stroke width and margin (normalise_lines thins and redraws the strokes)."""
    ink = (grey < 128).astype(np.uint8)
    n, comp = cv2.connectedComponents(ink, connectivity=8)
    if n > 3:
        drop = rng.random(n) < 0.25
        drop[0] = False
        ink[drop[comp]] = 0
    h, w = ink.shape
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    M[0, 1] += rng.uniform(-0.1, 0.1)  # shear
    ink = cv2.warpAffine(ink, M, (w, h), flags=cv2.INTER_NEAREST)
    out = np.where(ink > 0, 0, 255).astype(np.uint8)
    if not (out < 128).any():
        out = grey
    return normalise_lines(out, 224, stroke=rng.uniform(1.5, 5), margin=rng.uniform(0.04, 0.16),
                           check=False)


def clean(grey: np.ndarray) -> np.ndarray:
    if not (grey < 128).any():
        return np.full((224, 224, 3), 255, np.uint8)
    return normalise_lines(grey, 224, check=False)


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
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
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
    greys = [line_grey(p) for p in photos]
    line_maps = [clean(g) for g in greys]
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
        views = [[augmented(g, rng) for _ in range(args.views)] for g in greys]
        A_views = run_trunk(sess, out, [v for vs in views for v in vs]).reshape(
            len(photos), args.views, *A_clean.shape[1:])
        t_trunk = time.perf_counter() - t
    print(f"line maps {t_lines:.1f} s, trunk activations {t_trunk:.1f} s "
          f"({len(photos) * (1 + args.views) + len(sketches)} images)")

    rows: dict[str, list[float]] = {"map (default: fitted map + offset + expansion)": [],
                                    "distilled, sketch -> photo": [],
                                    "distilled + expansion": [],
                                    "distilled + fitted map + offset + expansion": []}
    epochs_used, train_s, n_fit = [], [], 0
    for split in range(args.splits):
        perm = list(np.random.default_rng(split).permutation(classes))
        other, searched = sorted(perm[:15]), sorted(perm[15:])
        pa, pb = np.isin(p_cls, searched), np.isin(p_cls, other)
        sa, sb = np.isin(s_cls, searched), np.isin(s_cls, other)
        ga, gb = np.flatnonzero(pa), np.flatnonzero(pb)
        src_a = np.searchsorted(ga, s_src[sa])
        src_b = np.searchsorted(gb, s_src[sb])

        def mapped(L: np.ndarray, S: np.ndarray, pa=pa, pb=pb, sa=sa, sb=sb, src_a=src_a
                   ) -> float:
            shift = domain_shift(S[sb], L[pb])
            m = LineToPhotoMap(sketch_shift=shift).fit(L[pa], P[pa])
            return mean_ap(m.transform(S[sa]), m.photos(P[pa]), s_cls[sa], p_cls[pa], src_a, True)

        rows["map (default: fitted map + offset + expansion)"].append(mapped(L0, S0))
        # distil on the searched classes' photos only
        tail = build_tail(torch, weights, variant, start, 1,
                          (np.zeros((1, 1280), np.float32), np.zeros(1, np.float32)))
        params = [p for n, p in tail.named_parameters() if not n.startswith("fc.")]
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
        X = np.concatenate([A_clean[pa][:, None], A_views[pa]], axis=1)
        X = X.reshape(-1, *A_clean.shape[1:])
        target = torch.from_numpy(np.repeat(P[pa], 1 + args.views, axis=0).astype(np.float32))
        n_fit = int(pa.sum())

        def val_map(tail=tail, pb=pb, sb=sb, src_b=src_b) -> float:
            """The other classes' sketch -> photo mAP through the map fitted on their photos
            (the path a person's index takes), offset measured on them: validation only."""
            Lb = tail_features(torch, tail, A_clean[pb])
            Sb = tail_features(torch, tail, A_sketch[sb])
            m = LineToPhotoMap(sketch_shift=domain_shift(Sb, Lb)).fit(Lb, P[pb])
            return mean_ap(m.transform(Sb), m.photos(P[pb]), s_cls[sb], p_cls[pb], src_b, True)

        best, best_state, best_epoch = val_map(), None, 0
        print(f"split {split}: before distilling, the other classes' mAP {best:.3f}")
        gen = np.random.default_rng(split)
        t = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            tail.train()
            order = gen.permutation(len(X))
            for s in range(0, len(order), 64):
                b = np.sort(order[s:s + 64])
                f = tail.features(torch.from_numpy(X[b].astype(np.float32)))
                loss = (1 - torch.nn.functional.cosine_similarity(f, target[b])).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            v = val_map()
            print(f"split {split} epoch {epoch}: loss {float(loss.detach()):.4f}, other classes' "
                  f"sketch->photo mAP {v:.3f}")
            if v > best:
                best, best_epoch = v, epoch
                best_state = {k: x.detach().clone() for k, x in tail.state_dict().items()}
        train_s.append(time.perf_counter() - t)
        if best_state is not None:
            tail.load_state_dict(best_state)
        epochs_used.append(best_epoch)
        L1 = normalize(tail_features(torch, tail, A_clean))
        S1 = normalize(tail_features(torch, tail, A_sketch))
        rows["distilled, sketch -> photo"].append(
            mean_ap(S1[sa], P[pa], s_cls[sa], p_cls[pa], src_a, False))
        rows["distilled + expansion"].append(
            mean_ap(S1[sa], P[pa], s_cls[sa], p_cls[pa], src_a, True))
        rows["distilled + fitted map + offset + expansion"].append(mapped(L1, S1))
        print(f"split {split}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items()))

    per_1000 = (t_trunk * 1000 / (len(photos) * (1 + args.views) + len(sketches))
                * (1 + args.views) + statistics.mean(train_s) / n_fit * 1000)
    base = statistics.mean(rows["map (default: fitted map + offset + expansion)"])
    lines = preamble("onnxruntime", "torch", "sklearn") + [
             f"Dev Sketchy, split by classes ({args.splits} seeded 15/15 splits): the last "
             f"{TUNE_BLOCKS} blocks and the head convolution of {NAME} distilled on the "
             f"searched classes' {n_fit} photos' line maps ({args.views} augmented views each "
             "beside the clean one: dropped strokes, a small affine warp, stroke width and "
             "margin) towards the photos' own features (cosine loss, AdamW "
             f"lr {args.lr:g}, up to {args.epochs} epochs, the epoch chosen by the other 15 "
             "classes' sketch->photo mAP through their own fitted map). Each sketch's own "
             "source photo left out of its ranking; sketches of the searched classes are "
             "never seen.", "",
             "| path | mAP | vs the default map |", "|---|---|---:|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f} | "
                     f"{statistics.mean(v) / base:.2f}x |")
    lines += ["", f"Epochs chosen: {epochs_used}. Cost on this machine: trunk activations and "
              f"training about {per_1000:.0f} s per 1,000 photos ({statistics.mean(train_s):.0f} "
              f"s of training per split on {n_fit} photos), against "
              "0.25 s for the fitted map on 750 photos. Whole benchmark "
              f"{time.perf_counter() - t_all:.0f} s."]
    write_section(ROOT / "benchmarks" / "RESULTS.md",
                  "Query by sketch: distillation (dev Sketchy)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
