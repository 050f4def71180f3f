"""Leaky splits and the dataset export, on planted collections.

A planted collection is laid out as ``train/<class>/`` and ``test/<class>/`` (a seeded 80/20
cut of each class of a dev set) with planted near-duplicates (bench_inspect's kinds: resized,
re-compressed, cropped, re-exposed, converted ...): 15 % of the training photos get a copy
in ``test/`` (leaks) and 5 % a copy inside ``train/`` (not leaks). Then:

1. ``inspect --splits train,test``: leak pairs found against the planted ones (a pair =
   two members of a reported leak in different splits; pairs the source data already held,
   the same photo twice in a dev set, count as false: precision is a lower bound);
2. ``cluster``, the suggested names accepted, ``export --as-dataset --split 0.7,0.15,0.15
   --labels run:ID --exclude none`` (copies exported too, so the groups must be kept
   whole): planted groups cut across splits, the largest gap between a split's share and
   the share asked (overall and per label, labels of 20 images or more), torchvision
   ImageFolder's count of ``OUT/train`` (its discovery rules: torchvision cannot be
   installed here) against the manifest, and the source tree's digest before and after.

    python benchmarks/bench_leaks.py [--sources clothing rooms] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, preamble, write_section  # noqa: E402
from bench_inspect import COPY_KINDS, _copy  # noqa: E402

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def plant(src: Path, out: Path, seed: int) -> tuple[set[frozenset[str]], list[set[str]]]:
    """The planted collection; ``(leak pairs, planted groups)`` as paths relative to
    ``out``."""
    rng = random.Random(seed)
    leaks: set[frozenset[str]] = set()
    groups: list[set[str]] = []
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(p for p in cls.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        rng.shuffle(files)
        cut = int(0.8 * len(files))
        for split, part in (("train", files[:cut]), ("test", files[cut:])):
            for f in part:
                dst = out / split / cls.name / f"{f.stem}.jpg"
                dst.parent.mkdir(parents=True, exist_ok=True)
                Image.open(f).convert("RGB").save(dst, quality=92)
        for f in files[:cut]:
            r = rng.random()
            if r >= 0.20:
                continue
            split = "test" if r < 0.15 else "train"
            im, ext, q = _copy(Image.open(f).convert("RGB"), rng.choice(COPY_KINDS), rng)
            copy = out / split / cls.name / f"{f.stem}-copy.{ext}"
            im.save(copy, **({"quality": q} if ext == "jpg" else {}))
            orig = f"train/{cls.name}/{f.stem}.jpg"
            rel = copy.relative_to(out).as_posix()
            groups.append({orig, rel})
            if split == "test":
                leaks.add(frozenset((orig, rel)))
    return leaks, groups


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def image_folder_count(root: Path) -> int:
    """torchvision ImageFolder's find_classes + make_dataset, counted."""
    n = 0
    for c in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        for _d, _dirs, files in os.walk(root / c, followlinks=True):
            n += sum(f.lower().endswith(IMG_EXTENSIONS) for f in files)
    return n


def one(src: str, seed: int, tmp: Path) -> dict:
    from imgatlas import api

    root = tmp / f"{src}-{seed}" / "photos"
    leaks, groups = plant(SHARED / src, root, seed)
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws)
    res = api.inspect(ws, splits="train,test")
    found = set()
    for lk in res["leaks"]:
        rel = [Path(m).relative_to(root).as_posix() for m in lk["members"]]
        for a in range(len(rel)):
            for b in range(a + 1, len(rel)):
                if lk["splits"][a] != lk["splits"][b]:
                    found.add(frozenset((rel[a], rel[b])))
    tp = len(found & leaks)
    run = api.cluster(ws)
    for c in api.clusters(ws, run=run["run_id"], accept=True):  # suggested, else group-N
        if not c["name"] and c["cluster"] >= 0:
            api.name_cluster(ws, run["run_id"], c["cluster"], f"group-{c['cluster']}")
    before = digest(root)
    out = root.parent / "dataset"
    shares = (0.7, 0.15, 0.15)
    ex = api.export_dataset(ws, out, split=",".join(map(str, shares)),
                            labels=f"run:{run['run_id']}", exclude=[], seed=seed)
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    split_of = {Path(r["source_path"]).relative_to(root).as_posix(): r["split"] for r in rows}
    cut = sum(len({split_of.get(m) for m in g} - {None, ""}) > 1 for g in groups)
    found_groups: dict[str, set[str]] = {}
    for r in rows:
        if r["near_duplicate_group"] and r["split"]:
            found_groups.setdefault(r["near_duplicate_group"], set()).add(r["split"])
    found_cut = sum(len(s) > 1 for s in found_groups.values())
    n = sum(ex["splits"].values())
    gap = max(abs(ex["splits"][s] / n - sh) for s, sh in zip(("train", "val", "test"), shares,
                                                            strict=True))
    label_gap = max(abs(per[s] / sum(per.values()) - sh)
                    for per in ex["labels"].values() if sum(per.values()) >= 20
                    for s, sh in zip(("train", "val", "test"), shares, strict=True))
    return {"src": src, "seed": seed, "images": len(split_of), "planted_leaks": len(leaks),
            "found_pairs": len(found), "recall": tp / max(len(leaks), 1),
            "precision": tp / max(len(found), 1), "groups": len(groups), "groups_cut": cut,
            "found_groups": len(found_groups), "found_cut": found_cut,
            "share_gap": gap, "label_gap": label_gap, "labels": len(ex["labels"]),
            "train": ex["splits"]["train"], "imagefolder_train": image_folder_count(
                out / "train"), "source_unchanged": digest(root) == before}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", nargs="+", default=["clothing", "rooms", "imagenette"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_leaks_"))
    rows = []
    for src in args.sources:
        for seed in args.seeds:
            rows.append(one(src, seed, tmp))
            print(rows[-1], flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    lines = preamble("numpy")
    lines += ["Planted collections laid out as train/ and test/ (80/20 of each class of a dev "
              "set; 15 % of the training photos copied into test/, 5 % inside train/; the "
              "copies as in bench_inspect). Leaks: pairs across the splits found by "
              "`inspect --splits train,test` against the planted ones. Dataset: `export "
              "--as-dataset --split 0.7,0.15,0.15 --labels run:ID --exclude none` after "
              "`cluster` (labels: the clusters' suggested names), copies exported too. "
              "*gap*: the largest difference between a split's share and the one asked, "
              "overall and per label (labels of 20+ images). *ImageFolder*: torchvision's "
              "discovery rules on OUT/train against the manifest. A planted group can be cut "
              "only where inspect did not find it (a missed pair); the groups inspect found "
              "are never cut. Dev data; no threshold was tuned for this benchmark.", "",
              "| source | seed | images | planted leaks | recall | precision | found groups "
              "cut | planted groups cut | gap | label gap | ImageFolder = manifest | source "
              "unchanged |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['src']} | {r['seed']} | {r['images']} | {r['planted_leaks']} | "
                     f"{r['recall']:.3f} | {r['precision']:.3f} | {r['found_cut']} of "
                     f"{r['found_groups']} | {r['groups_cut']} of {r['groups']} | "
                     f"{r['share_gap']:.3f} | {r['label_gap']:.3f} | "
                     f"{r['imagefolder_train'] == r['train']} | {r['source_unchanged']} |")
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Leaky splits and dataset export "
                      "(planted, dev sets)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
