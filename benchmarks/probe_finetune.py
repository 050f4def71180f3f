"""Probe: does fine-tuning the default backbone on the collection itself help clustering?

Not part of imgatlas (a GPU experiment behind one sentence of the README): EfficientNet-Lite0
is fine-tuned, self-supervised, on one dev set, and its features are then clustered by the
default pipeline. Two objectives, both contrastive (NT-Xent, temperature 0.2, a 2-layer
projection head): ``simclr`` (two augmentations of the same image) and ``nn`` (with
probability 1/2 the second view is one of the image's 5 nearest neighbours under the
ImageNet features instead: the semantic prior SCAN/NNCLR mine). Augmentations run on the
GPU: random resized crop (area 0.3-1, aspect 3/4-4/3), flip, brightness/contrast/saturation
jitter, grayscale. Backbone lr 1e-4, head 1e-3 (AdamW), batch 256, bf16.

    python benchmarks/probe_finetune.py pack DIR [--sets clothing,rooms,cifar10]   # here
    python benchmarks/probe_finetune.py train DIR SET MODE EPOCHS                   # GPU
    python benchmarks/probe_finetune.py score DIR                                   # here

``pack`` writes the dev images (decoded and resized as imgatlas does) plus the network's
code and weights into DIR, so DIR alone can be carried to a GPU machine that has PyTorch;
``train`` needs only numpy, Pillow and torch; ``score`` clusters every saved checkpoint
(default reduction + k-means, k = classes, 3 seeds) and writes the section "Fine-tuning
probe" of benchmarks/RESULTS.md. Labels only score.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

CHECKPOINTS = (5, 10, 20, 40, 60, 80)


def pack(out: Path, sets: list[str]) -> None:
    from PIL import Image

    from _common import SHARED
    from imgatlas.backbones.efficientnet_lite import weights_file
    from imgatlas.decode import decode_rgb

    out.mkdir(parents=True, exist_ok=True)
    import efficientnet_lite_pytorch

    shutil.copytree(Path(efficientnet_lite_pytorch.__file__).parent,
                    out / "efficientnet_lite_pytorch", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(weights_file(), out / "lite0.pth")
    for name in sets:
        files = sorted(p for p in (SHARED / name).rglob("*")
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        classes = sorted({p.parent.name for p in files})
        y = np.array([classes.index(p.parent.name) for p in files])
        blobs = []
        for p in files:  # JPEG q92 at 224: what fits in a device call's 64 MiB
            buf = io.BytesIO()
            Image.fromarray(decode_rgb(p, (224, 224))).save(buf, "JPEG", quality=92)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        np.savez(out / f"{name}.npz", x=np.array(blobs, dtype=object), y=y)
        print(name, len(files), f"{(out / f'{name}.npz').stat().st_size / 1e6:.1f} MB")


def train(root: Path, name: str, mode: str, epochs: int) -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    sys.path.insert(0, str(root))
    from efficientnet_lite_pytorch import EfficientNet

    dev = "cuda"
    torch.manual_seed(0)
    d = np.load(root / f"{name}.npz", allow_pickle=True)
    x = d["x"]
    if x.dtype == object:  # JPEG bytes (pack)
        x = np.stack([np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")) for b in x])
    X = torch.from_numpy(x).to(dev).permute(0, 3, 1, 2).float()
    if X.shape[-2:] != (224, 224):  # raw small images (32x32 CIFAR): bilinear, as imgatlas
        X = torch.cat([F.interpolate(X[i:i + 500], size=(224, 224), mode="bilinear")
                       for i in range(0, len(X), 500)])
    n = len(X)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(root / "lite0.pth", map_location="cpu", weights_only=True))
    net = net.to(dev)
    out = root / "out"
    out.mkdir(exist_ok=True)
    np.save(out / f"{name}-y.npy", d["y"])

    def feats(xb):
        return net.extract_features((xb - 127) / 128).mean((2, 3))

    @torch.no_grad()
    def save(ep: int):
        net.eval()  # running BN statistics: train-mode batches would mix images' features
        with torch.autocast("cuda", dtype=torch.bfloat16):
            f = torch.cat([feats(X[i:i + 256]).float() for i in range(0, n, 256)])
        net.train()
        np.save(out / f"{name}-{mode}-ep{ep}.npy", f.cpu().numpy().astype(np.float16))
        return f

    def uniform(lo: float, hi: float, *shape: int):
        return torch.empty(shape, device=dev).uniform_(lo, hi)

    def augment(xb):
        b = len(xb)
        area, ar = uniform(0.3, 1.0, b), torch.exp(uniform(np.log(3 / 4), np.log(4 / 3), b))
        sx, sy = torch.sqrt(area * ar).clamp(max=1), torch.sqrt(area / ar).clamp(max=1)
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0] = sx * torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
        theta[:, 1, 1] = sy
        theta[:, 0, 2] = uniform(-1, 1, b) * (1 - sx)
        theta[:, 1, 2] = uniform(-1, 1, b) * (1 - sy)
        grid = F.affine_grid(theta, (b, 3, 224, 224), align_corners=False)
        o = F.grid_sample(xb, grid, padding_mode="reflection", align_corners=False)
        jit = (torch.rand(b, 1, 1, 1, device=dev) < 0.8).float()
        o = o * (1 + jit * uniform(-0.4, 0.4, b, 1, 1, 1))
        m = o.mean((1, 2, 3), keepdim=True)
        o = (o - m) * (1 + jit * uniform(-0.4, 0.4, b, 1, 1, 1)) + m
        gray = o.mean(1, keepdim=True)
        o = (o - gray) * (1 + jit * uniform(-0.4, 0.4, b, 1, 1, 1)) + gray
        gs = (torch.rand(b, 1, 1, 1, device=dev) < 0.2).float()
        return (gs * o.mean(1, keepdim=True).expand_as(o) + (1 - gs) * o).clamp(0, 255)

    fn = F.normalize(save(0), dim=1)
    nbr = (fn @ fn.T).topk(6, dim=1).indices[:, 1:]  # positives mined with ImageNet features
    head = torch.nn.Sequential(torch.nn.Linear(1280, 2048), torch.nn.BatchNorm1d(2048),
                               torch.nn.ReLU(), torch.nn.Linear(2048, 128)).to(dev)
    opt = torch.optim.AdamW([{"params": net.parameters(), "lr": 1e-4},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=1e-5)
    t, bs = time.time(), 256
    for ep in range(1, epochs + 1):
        perm = torch.randperm(n, device=dev)
        for s in range(0, n - bs // 2, bs):
            b = b2 = perm[s:s + bs]
            if mode == "nn":
                use = torch.rand(len(b), device=dev) < 0.5
                b2 = torch.where(use, nbr[b, torch.randint(5, (len(b),), device=dev)], b)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                za = F.normalize(head(feats(augment(X[b]))).float(), dim=1)
                zb = F.normalize(head(feats(augment(X[b2]))).float(), dim=1)
            z = torch.cat([za, zb])
            sim = (z @ z.T / 0.2).fill_diagonal_(-1e9)
            k = len(b)
            target = torch.cat([torch.arange(k, 2 * k), torch.arange(0, k)]).to(dev)
            loss = F.cross_entropy(sim, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep in CHECKPOINTS or ep == epochs:
            save(ep)
            print(name, mode, ep, f"loss {loss.item():.3f}", f"{time.time() - t:.0f}s",
                  flush=True)


def score(root: Path, note: str = "") -> None:
    from _common import ROOT, preamble, write_section
    from imgatlas.cluster import KMeansClusterer
    from imgatlas.defaults import REDUCE as DEFAULT_REDUCE
    from imgatlas.evaluate import cluster_accuracy
    from imgatlas.reduce import make_reducer

    out = root / "out"
    rows = []
    key = re.compile(r"(.+)-(simclr|nn)-ep(\d+)\.npy")
    found = sorted((m.group(1), m.group(2), int(m.group(3)), p)
                   for p in out.glob("*-ep*.npy") if (m := key.fullmatch(p.name)))
    for name, mode, ep, path in found:
        y = np.load(out / f"{name}-y.npy")
        k = int(y.max()) + 1
        X = np.load(path).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        dflt, plain = [], []
        for seed in range(3):
            Z = make_reducer(DEFAULT_REDUCE, random_state=seed).fit_transform(X)
            dflt.append(cluster_accuracy(y, KMeansClusterer(k, random_state=seed).fit_predict(Z)))
            plain.append(cluster_accuracy(y, KMeansClusterer(k, random_state=seed).fit_predict(X)))
        rows.append(f"| {name} | {mode} | {ep} | **{np.mean(dflt):.3f}** ± {np.std(dflt):.3f} | "
                    f"{np.mean(plain):.3f} ± {np.std(plain):.3f} |")
        print(rows[-1], flush=True)
    body = [*preamble(), "Features of EfficientNet-Lite0 fine-tuned on the set itself "
            "(self-supervised, see the script's docstring; trained on one H100, features "
            "scored here). Epoch 0 is the ImageNet network (images re-encoded as JPEG q92, "
            "bf16: slightly below the workspace features). Hungarian ACC, mean ± sd over 3 "
            "seeds, k = classes.", "",
            "| set | objective | epochs | default pipeline | L2 + k-means |",
            "|---|---|---|---|---|", *rows, *(["", note] if note else [])]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Fine-tuning probe", "\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("dir", type=Path)
    p.add_argument("--sets", default="clothing,rooms,cifar10")
    p = sub.add_parser("train")
    p.add_argument("dir", type=Path)
    p.add_argument("set")
    p.add_argument("mode", choices=("simclr", "nn"))
    p.add_argument("epochs", type=int)
    p = sub.add_parser("score")
    p.add_argument("dir", type=Path)
    p.add_argument("--note", default="", help="provenance to print under the table")
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args.dir, args.sets.split(","))
    elif args.cmd == "train":
        train(args.dir, args.set, args.mode, args.epochs)
    else:
        score(args.dir, args.note)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
