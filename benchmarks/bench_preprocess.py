"""Does the resize filter matter? Feature quality of the default backbone under each.

For each dev set, embed every image with the resize done by (a) OpenCV bilinear after an
integer box reduction to within 2x (imgatlas' default: fast), (b) Pillow's antialiased
bilinear (slow), (c) OpenCV area, and score the features by leave-one-out 10-NN label
agreement (cosine) and k-means ACC (k = classes). Labels only score; nothing is tuned here.

    python benchmarks/bench_preprocess.py [--sets clothing,rooms] [--n 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from _common import ROOT, SHARED, class_balanced, preamble, write_section
from imgatlas.backbones import create_backbone
from imgatlas.decode import _image
from imgatlas.embed import Embedder
from imgatlas.evaluate import cluster_accuracy


def pil_bilinear(img, size, mode, interpolation):
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR))


def knn_agreement(X: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Xn @ Xn.T
    np.fill_diagonal(S, -np.inf)
    nn = np.argsort(-S, axis=1)[:, :k]
    return float((y[nn] == y[:, None]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="clothing,rooms")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    from sklearn.cluster import KMeans

    bb = create_backbone("efficientnet_lite0", cache_dir=ROOT / "benchmarks" / "_work" / "cache")
    original = _image._resize
    variants = {
        "opencv bilinear after box reduce (default)": original,
        "pillow antialiased bilinear": pil_bilinear,
        "opencv area": lambda img, size, mode, interp: original(img, size, mode, 3),
    }
    lines = ["| set | resize | 10-NN agreement | k-means ACC | decode+resize ms/img |",
             "|---|---|---|---|---|"]
    for name in args.sets.split(","):
        files = class_balanced(SHARED / name, args.n)
        if not files:
            continue
        y = np.array([f.parent.name for f in files])
        for label, fn in variants.items():
            _image._resize = fn
            emb = Embedder(bb)
            t = time.perf_counter()
            px = [emb.decode(f) for f in files]
            ms = (time.perf_counter() - t) / len(files) * 1000
            X = np.concatenate([emb.features(np.stack(px[i:i + 32]))
                                for i in range(0, len(px), 32)])
            Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
            acc = cluster_accuracy(y, KMeans(len(set(y)), n_init=10, random_state=0)
                                   .fit_predict(Xn))
            lines.append(f"| {name} | {label} | {knn_agreement(X, y):.3f} | {acc:.3f} | "
                         f"{ms:.2f} |")
            print(lines[-1], flush=True)
        _image._resize = original
    body = [*preamble("cv2", "PIL"),
            "Leave-one-out 10-NN label agreement (cosine) and k-means ACC (k = classes, "
            "n_init 10, seed 0) of default-backbone features; labels only score.", ""] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Resize filter and feature quality",
                  "\n".join(body))


if __name__ == "__main__":
    main()
