"""The studies' autoencoder pipelines on the dev sets: train a convolutional autoencoder on
each collection (imgatlas train-autoencoder), embed with its encoder, cluster with k-means
and with a GMM over several seeds. Labels only score.

    python benchmarks/bench_autoencoder.py [--sets ...] [--seeds 5] [--epochs 20]

Presets follow the studies: `fashion` (28x28 grey, 16-8-8) for Fashion-MNIST, `apparel`
(240x320, 32-16-8) for the clothing photos, and imgatlas' `default` (64x64) elsewhere.
Writes the section "Clustering quality: autoencoder pipelines" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics

from _common import ROOT, SHARED, preamble, write_section
from imgatlas import api

WORK = ROOT / "benchmarks" / "_work"
PRESET = {"fashion-mnist": "fashion", "clothing": "apparel"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="imagenette,rooms,clothing,cifar10,fashion-mnist")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    lines = ["| set | preset | epochs (early stop) | train s | code dim | AE + k-means ACC | "
             "AE + GMM ACC |", "|---|---|---|---|---|---|---|"]
    for s in args.sets.split(","):
        if not (SHARED / s).exists():
            continue
        ws = WORK / s
        if not (ws / "catalog.sqlite").exists():
            api.scan(SHARED / s, ws, labels_from_folders=True)
        preset = PRESET.get(s, "default")
        tr = api.train_autoencoder(ws, preset=preset, epochs=args.epochs, patience=3, wait=900)
        emb = api.embed(ws, backbone=tr["onnx"], wait=900)
        k = sum(1 for d in (SHARED / s).iterdir() if d.is_dir())
        cells = []
        for method, reduce in (("kmeans", "none"), ("gmm", "pca:50")):
            accs = []
            for seed in range(args.seeds):
                run = api.cluster(ws, features=emb["store"], reduce=reduce, method=method,
                                  k=k, seed=seed, options={"covariance_type": "diag"}
                                  if method == "gmm" else None, wait=900)
                accs.append(api.evaluate(ws, run["run_id"], wait=900)["acc"])
            cells.append(f"**{statistics.mean(accs):.3f}** ± {statistics.pstdev(accs):.3f}")
        early = " (yes)" if tr["stopped_early"] else ""
        lines.append(f"| {s} | {preset} | {tr['epochs_run']}{early} | {tr['seconds']:.0f} | "
                     f"{tr['dim']} | {cells[0]} | {cells[1]} |")
        print(lines[-1], flush=True)
    body = [*preamble("torch"),
            f"Hungarian ACC, mean ± sd over {args.seeds} seeds, k = number of classes. GMM runs "
            "on PCA-50 of the code with diagonal covariances (a full covariance on thousands "
            "of dimensions is not estimable from these sample sizes).", ""] + lines
    write_section(ROOT / "benchmarks" / "RESULTS.md",
                  "Clustering quality: autoencoder pipelines (studies)", "\n".join(body))


if __name__ == "__main__":
    main()
