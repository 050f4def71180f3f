"""Inspect on planted sets: near-duplicates, blurry and dark images found by imgatlas and by
cleanvision, side by side in one run; then inspect's speed with the features given.

A planted set is built from dev photos (``--sources``, a seeded sample of each): every photo
is kept as it is (re-saved as JPEG q 92), and some get a planted copy:

- near-duplicates (35 %): half size, 0.6-0.8 size, a JPEG re-save at q 15-40, a crop of 3-10 %
  (per side, random), brightness x1.2-1.4 or x0.6-0.8, saturation x0.3-1.8, grayscale, PNG
  or WEBP instead of JPEG, and pairs of these;
- blurred (10 %): Gaussian sigma 1-2 % of the longer side, or a motion streak 3-5 % of it
  (what a person calls out of focus or shaken);
- darkened (7 %): brightness x0.04-0.15 (nearly black).

Scoring: a near-duplicate pair is any two images in one group; the truth pairs are each
photo with its planted copy. A blurred or darkened copy grouped with its original counts
neither way. Pairs the source data already held (the same photo twice in a dev set) are
found as well and counted as false: the figure is a lower bound on precision.

    python benchmarks/bench_inspect.py [--seeds 0 1 2] [--per-source 150] [--speed 10000]

cleanvision is run on the same folder when installed (``pip install cleanvision``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    SHARED,
    class_balanced,
    mixed_dev_folder,
    preamble,
    scaled,
    write_section,
)

SOURCES = ["clothing", "rooms", "imagenette", "sketchy/photo"]
COPY_KINDS = ["half", "smaller", "jpeg", "crop", "brighter", "darker", "saturation", "gray",
              "png", "webp", "half+jpeg", "crop+brighter", "smaller+saturation", "crop+png"]


def _copy(im: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, str, int]:
    """A planted copy of ``im``: (image, extension, JPEG quality)."""
    ext, quality = "jpg", 90
    for part in kind.split("+"):
        if part == "half":
            im = scaled(im, 0.5)
        elif part == "smaller":
            im = scaled(im, rng.uniform(0.6, 0.8))
        elif part == "jpeg":
            quality = rng.randint(15, 40)
        elif part == "crop":
            cw, ch = im.size
            f = rng.uniform(0.03, 0.10)
            im = im.crop((int(cw * f * rng.random()), int(ch * f * rng.random()),
                          cw - int(cw * f * rng.random()), ch - int(ch * f * rng.random())))
        elif part == "brighter":
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(1.2, 1.4))
        elif part == "darker":
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.6, 0.8))
        elif part == "saturation":
            im = ImageEnhance.Color(im).enhance(rng.choice([rng.uniform(0.3, 0.6),
                                                             rng.uniform(1.4, 1.8)]))
        elif part == "gray":
            im = im.convert("L").convert("RGB")
        elif part in ("png", "webp"):
            ext = part
    return im, ext, quality


BLUR = (0.01, 0.02)  # Gaussian sigma as a share of the longer side (motion: x2.5)


def _blur(im: Image.Image, rng: random.Random) -> tuple[Image.Image, str]:
    import cv2

    side = max(im.size)
    if rng.random() < 0.6:
        sigma = rng.uniform(*BLUR) * side
        return im.filter(ImageFilter.GaussianBlur(sigma)), f"gauss{sigma:.1f}"
    length = max(5, int(rng.uniform(2.5 * BLUR[0], 2.5 * BLUR[1]) * side)) | 1
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    kernel /= kernel.sum()
    return Image.fromarray(cv2.filter2D(np.asarray(im), -1, kernel)), f"motion{length}"


def plant(out: Path, sources: list[str], per_source: int, seed: int) -> dict:
    """Write a planted set into ``out``; return its truth."""
    rng = random.Random(seed)
    files: list[tuple[str, Path]] = []
    for s in sources:
        pool = class_balanced(SHARED / s, 10**6)
        rng.shuffle(pool)
        files += [(s, p) for p in pool[:per_source]]
    rng.shuffle(files)
    out.mkdir(parents=True)
    truth: dict[str, Any] = {"copies": [], "blurry": [], "dark": [], "photos": [],
                             "source": {}}
    for n, (source, f) in enumerate(files):
        im = Image.open(f).convert("RGB")
        name = f"p{n:04d}.jpg"
        im.save(out / name, quality=92)
        truth["photos"].append(name)
        truth["source"][f"p{n:04d}"] = source
        r = rng.random()
        if r < 0.35:
            kind = rng.choice(COPY_KINDS)
            c, ext, q = _copy(im, kind, rng)
            cname = f"p{n:04d}-copy-{kind}.{ext}"
            c.save(out / cname, **({"quality": q} if ext in ("jpg", "webp") else {}))
            truth["copies"].append([name, cname, kind])
        elif r < 0.45:
            b, kind = _blur(im, rng)
            bname = f"p{n:04d}-blur-{kind}.jpg"
            b.save(out / bname, quality=90)
            truth["blurry"].append([bname, name])
        elif r < 0.52:
            d = ImageEnhance.Brightness(im).enhance(rng.uniform(0.04, 0.15))
            dname = f"p{n:04d}-dark.jpg"
            d.save(out / dname, quality=90)
            truth["dark"].append([dname, name])
    return truth


def _pairs(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


def _source(truth: dict, name: str) -> str:
    return truth["source"][name[:5]]  # every planted file starts with its photo's pNNNN


def score(truth: dict, groups: list[list[str]], blurry: set[str], dark: set[str],
          only: str | None = None) -> dict[str, Any]:
    """Pair and flag precision/recall; ``only``: counted over the photos of one source (a
    false pair counts for each source it touches)."""
    if only is not None:
        mine = {n for n in truth["source"] if truth["source"][n] == only}

        def keep(name: str) -> bool:
            return name[:5] in mine

        truth = {**truth, **{k: [p for p in truth[k] if keep(p[0])]
                             for k in ("copies", "blurry", "dark")}}
        groups = [g for g in groups if any(keep(x) for x in g)]
        blurry = {b for b in blurry if keep(b)}
        dark = {d for d in dark if keep(d)}
    want = {frozenset(p[:2]) for p in truth["copies"]}
    excused_of = {}
    for copy, orig in truth["blurry"] + truth["dark"]:
        excused_of[copy] = orig
    got = _pairs(groups)

    def excused(pair: frozenset[str]) -> bool:
        return any(x in excused_of for x in pair)

    judged = {p for p in got if not excused(p)}
    tp = len(judged & want)
    b_true = {b for b, _ in truth["blurry"]}
    d_true = {d for d, _ in truth["dark"]}

    def pr(pred: set[str], true: set[str]) -> tuple[float, float]:
        hit = len(pred & true)
        return (hit / len(pred) if pred else 1.0), (hit / len(true) if true else 1.0)

    bp, br = pr(blurry, b_true)
    dp, dr = pr(dark, d_true)
    return {"dup_precision": tp / len(judged) if judged else 1.0,
            "dup_recall": tp / len(want) if want else 1.0,
            "blur_precision": bp, "blur_recall": br, "dark_precision": dp, "dark_recall": dr,
            "n_pairs": len(want), "n_blurry": len(b_true), "n_dark": len(d_true),
            "false_pairs": sorted(" ~ ".join(sorted(p)) for p in judged - want)[:20],
            "missed_pairs": sorted(" ~ ".join(sorted(p)) for p in want - judged)[:20],
            "false_blurry": sorted(blurry - b_true)[:20],
            "missed_blurry": sorted(b_true - blurry)[:20]}


def run_imgatlas(folder: Path, ws: Path) -> tuple[list[list[str]], set[str], set[str], dict]:
    from imgatlas import api

    t = time.perf_counter()
    api.scan(folder, ws)
    emb = api.embed(ws)
    t_embed = time.perf_counter() - t
    t = time.perf_counter()
    res = api.inspect(ws)
    t_inspect = time.perf_counter() - t
    base = os.path.basename
    groups = [[base(g["keep"]), *(base(c) for c in g["copies"])]
              for g in res["near_duplicate_groups"]]
    blurry = {base(f["path"]) for f in res["flags"] if f["flag"] == "blurry"}
    dark = {base(f["path"]) for f in res["flags"] if f["flag"] == "dark"}
    return groups, blurry, dark, {"embed_s": t_embed, "inspect_s": t_inspect,
                                  "img_s": emb["images_per_second"]}


def run_cleanvision(folder: Path) -> tuple[list[list[str]], set[str], set[str], dict] | None:
    try:
        from cleanvision import Imagelab
    except ImportError:
        return None
    import contextlib
    import io

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        lab = Imagelab(data_path=str(folder))
        lab.find_issues()
    seconds = time.perf_counter() - t
    base = os.path.basename
    sets = lab.info["near_duplicates"]["sets"] + lab.info["exact_duplicates"]["sets"]
    groups = [[base(p) for p in s] for s in sets]
    issues = lab.issues
    blurry = {base(p) for p in issues.index[issues["is_blurry_issue"]]}
    dark = {base(p) for p in issues.index[issues["is_dark_issue"]]}
    return groups, blurry, dark, {"seconds": seconds}


def speed(n: int, tmp: Path) -> dict[str, float]:
    """Embed then inspect ``n`` dev images (Fashion-MNIST and CIFAR-10, tiny; and the photo
    sets) from an empty workspace; inspect's time with the features given, and embed's time
    with and without the pixel measures, side by side."""
    from imgatlas import api
    from imgatlas.backbones import create_backbone
    from imgatlas.embed import embed_workspace
    from imgatlas.store import Workspace

    folder = tmp / "speed"
    pool = mixed_dev_folder(folder, n)
    out: dict[str, Any] = {}
    times: dict[bool, list[float]] = {False: [], True: []}
    bb = create_backbone("efficientnet_lite0")
    for rep in range(2):  # interleaved, twice: the machine's speed drifts
        for measure in (False, True):
            ws = tmp / f"speed-{rep}-{measure}.imgatlas"
            api.scan(folder, ws)
            with Workspace.open(ws, write=True) as w:
                t = time.perf_counter()
                embed_workspace(w, bb, measure_pixels=measure)
                times[measure].append(time.perf_counter() - t)
    out["embed_s_without_measures"] = float(np.median(times[False]))
    out["embed_s_with_measures"] = float(np.median(times[True]))
    t = time.perf_counter()
    res = api.inspect(ws)
    out["inspect_s"] = time.perf_counter() - t
    out["n"] = min(n, len(pool))
    out["inspect_timings"] = res["run"]["timings"]
    # a rerun after 100 new images: only they are compared
    for k, p in enumerate(pool[n:n + 100]):
        shutil.copyfile(p, folder / f"new-{k}{p.suffix}")
    api.scan(folder, ws)
    api.embed(ws)
    t = time.perf_counter()
    res = api.inspect(ws)
    out["rerun_100_s"] = time.perf_counter() - t
    out["rerun_compared"] = res["run"]["n_compared"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--per-source", type=int, default=150)
    ap.add_argument("--sources", nargs="+", default=SOURCES)
    ap.add_argument("--speed", type=int, default=10_000, help="images for the speed run "
                                                               "(0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the planted sets")
    ap.add_argument("--blur", type=float, nargs=2, default=(0.01, 0.02),
                    help="Gaussian sigma range as a share of the longer side")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    global BLUR
    BLUR = tuple(args.blur)
    tmp = Path(tempfile.mkdtemp(prefix="bench_inspect_"))
    rows = []
    try:
        for seed in args.seeds:
            folder = tmp / f"planted-{seed}"
            truth = plant(folder, args.sources, args.per_source, seed)
            n_files = len(os.listdir(folder))
            g, b, d, info = run_imgatlas(folder, tmp / f"ws-{seed}")
            ours = score(truth, g, b, d)
            cv = run_cleanvision(folder)
            theirs = score(truth, *cv[:3]) if cv else None
            by_source = {s: score(truth, g, b, d, only=s) for s in args.sources}
            rows.append({"seed": seed, "n_files": n_files, "imgatlas": ours,
                         "cleanvision": theirs, "timing": info, "by_source": by_source,
                         "cleanvision_s": cv[3]["seconds"] if cv else None})
            print(json.dumps(rows[-1], indent=1), flush=True)
        sp = speed(args.speed, tmp) if args.speed else None
        if sp:
            print(json.dumps(sp, indent=1))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_write:
        title = "Inspect: near-duplicates, blur, dark (planted dev sets)"
        if tuple(args.blur) != (0.01, 0.02):
            title += f", blur sigma {100 * args.blur[0]:g}-{100 * args.blur[1]:g} % of the side"
        write_section(ROOT / "benchmarks" / "RESULTS.md", title, _render(rows, sp, args))


def _render(rows: list[dict], sp: dict | None, args: argparse.Namespace) -> str:
    lines = preamble("numpy", "cv2", "faiss", "cleanvision")
    lines += [f"Planted sets from {', '.join(args.sources)} ({args.per_source} photos of each "
              "per seed; the copies, blurs and darkenings of the script's docstring, Gaussian "
              f"blur sigma {100 * args.blur[0]:g}-{100 * args.blur[1]:g} % of the longer "
              "side). A "
              "blurred or darkened copy grouped with its original counts neither way. Dev "
              "data: the thresholds were chosen on these sets.", "",
              "| seed | files | tool | dup P | dup R | blurry P | blurry R | dark P | dark R "
              "| seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for tool in ("imgatlas", "cleanvision"):
            s = r[tool]
            if s is None:
                continue
            secs = (f"{r['timing']['embed_s']:.1f} embed + {r['timing']['inspect_s']:.1f} "
                    "inspect" if tool == "imgatlas" else f"{r['cleanvision_s']:.1f}")
            lines.append(
                f"| {r['seed']} | {r['n_files']} | {tool} | {s['dup_precision']:.3f} | "
                f"{s['dup_recall']:.3f} | {s['blur_precision']:.3f} | {s['blur_recall']:.3f} "
                f"| {s['dark_precision']:.3f} | {s['dark_recall']:.3f} | {secs} |")
    for tool in ("imgatlas", "cleanvision"):
        scored = [r[tool] for r in rows if r[tool]]
        if scored:
            mean = {k: np.mean([s[k] for s in scored]) for k in
                    ("dup_precision", "dup_recall", "blur_precision", "blur_recall",
                     "dark_precision", "dark_recall")}
            lines.append(f"| mean | | {tool} | " + " | ".join(
                f"{v:.3f}" for v in mean.values()) + " | |")
    if rows:
        lines += ["", "imgatlas per source photo set (all seeds pooled: each source's "
                      "photos, their planted copies and the pairs touching them):", "",
                  "| source | pairs | dup P | dup R | blurry | blurry P | blurry R | dark P "
                  "| dark R |", "|---|---|---|---|---|---|---|---|---|"]
        for src in args.sources:
            ss = [r["by_source"][src] for r in rows]
            n_pairs = sum(s["n_pairs"] for s in ss)
            n_blur = sum(s["n_blurry"] for s in ss)
            mean = {k: np.mean([s[k] for s in ss]) for k in
                    ("dup_precision", "dup_recall", "blur_precision", "blur_recall",
                     "dark_precision", "dark_recall")}
            lines.append(f"| {src} | {n_pairs} | {mean['dup_precision']:.3f} | "
                         f"{mean['dup_recall']:.3f} | {n_blur} | {mean['blur_precision']:.3f} "
                         f"| {mean['blur_recall']:.3f} | {mean['dark_precision']:.3f} | "
                         f"{mean['dark_recall']:.3f} |")
    if rows and rows[0]["imgatlas"]["false_pairs"]:
        lines += ["", "imgatlas's false pairs in the first set (to read; some are the same "
                      "photo twice in the source data): "
                  + "; ".join(rows[0]["imgatlas"]["false_pairs"][:8])]
    if sp:
        ratio = sp["inspect_s"] / sp["embed_s_with_measures"]
        cost = sp["embed_s_with_measures"] / sp["embed_s_without_measures"]
        lines += ["", f"Speed on {sp['n']:,} dev images (photos and tiny CIFAR-10 / "
                      "Fashion-MNIST files mixed), measured side by side in one run (embedding "
                      "with and without the measures interleaved, twice; medians):", "",
                  "| step | seconds | per 1,000 images |", "|---|---|---|",
                  f"| embed without pixel measures | {sp['embed_s_without_measures']:.1f} | "
                  f"{1000 * sp['embed_s_without_measures'] / sp['n']:.2f} |",
                  f"| embed with pixel measures (the default) | "
                  f"{sp['embed_s_with_measures']:.1f} | "
                  f"{1000 * sp['embed_s_with_measures'] / sp['n']:.2f} |",
                  f"| inspect, features and measures given | {sp['inspect_s']:.1f} | "
                  f"{1000 * sp['inspect_s'] / sp['n']:.2f} |",
                  f"| inspect again after 100 new images ({sp['rerun_compared']} compared) | "
                  f"{sp['rerun_100_s']:.2f} | |", "",
                  f"Inspect takes {ratio:.3f} of the embedding time; measuring the pixels "
                  f"while decoding makes embedding {cost:.2f}x as long. Inspect's parts: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in sp["inspect_timings"].items())
                  + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
