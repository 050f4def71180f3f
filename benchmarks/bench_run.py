"""The whole job against the model alone: `imgatlas run` from an empty workspace, stage by
stage, next to the fp32 model's own time on the same number of images, in the same run.

The images are dev CIFAR-10 JPGs (32x32) and Fashion-MNIST PNGs (28x28), half each, copied
into one folder tree (20 labelled folders). For each size (1,000 and 10,000 by default):

1. the model alone: the default backbone's fp32 graph (the reference of the first-run issue)
   and its int8 graph (what `run` embeds with by default) on pre-decoded 224x224 tensors of
   the first ``--model-sample`` images, batch 32, timed before and after the run (the mean
   of the two: the shared machine drifts), scaled to the size;
2. `imgatlas run` in a fresh process (model cache warm: the ONNX export and the int8 graph
   made once per machine), its stages as it reports them, the wall time of the whole
   command and the process's peak memory;
3. 100 new images added to the folder and `imgatlas run` again (what is new is scanned,
   embedded, inspected and placed; the report rewritten).

    python benchmarks/bench_run.py [--sizes 1000,10000] [--precision auto] [--cold-cache]
        [--against REF]

``--against REF`` also runs the same job with the code of git ref REF (a worktree of it,
on the same images, in fresh workspaces) before and after this code's run: what a change
gained, side by side on the same machine.

Writes "The whole job against the model alone" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, class_balanced, preamble, write_section  # noqa: E402


def build_folder(dst: Path, n: int, extra: Path, n_extra: int = 100) -> list[Path]:
    """``n`` images under ``dst`` (half CIFAR-10, half Fashion-MNIST) and ``n_extra`` more
    Fashion-MNIST ones, not among them, under ``extra``; returns the first ones' paths."""
    half = n // 2
    out = []
    for name, m, x, prefix in (("cifar10", half, 0, ""),
                               ("fashion-mnist", n - half, n_extra, "fmnist-")):
        picked = class_balanced(SHARED / name, m + x)
        for k, p in enumerate(picked):
            d = (dst if k < m else extra) / f"{prefix}{p.parent.name}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, d / p.name)
            if k < m:
                out.append(d / p.name)
    return out


def model_only(paths: list[Path], cache: Path | None, int8: bool = False) -> float:
    """Seconds per image of the default backbone's fp32 graph (or its int8 graph) on
    pre-decoded tensors, batch 32."""
    from imgatlas import create_backbone
    from imgatlas.backbones import bundled_int8
    from imgatlas.embed import Embedder

    bb = create_backbone("efficientnet_lite0", cache_dir=cache)
    emb = Embedder(bundled_int8(bb, cache) if int8 else bb)
    pixels = np.stack([emb.decode(str(p)) for p in paths])
    emb.features(pixels[:32])  # warm-up: session creation, first-run allocations
    t = time.perf_counter()
    for s in range(0, len(pixels), 32):
        emb.features(pixels[s:s + 32])
    return (time.perf_counter() - t) / len(pixels)


def time_report_open(index: Path) -> float | None:
    chromium = os.environ.get("IMGATLAS_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        times = []
        for _ in range(3):
            page = b.new_page(viewport={"width": 1280, "height": 900})
            t = time.perf_counter()
            page.goto(index.as_uri(), wait_until="load")
            page.wait_for_function("document.getElementById('mapcanvas')"
                                   ".getAttribute('data-points') !== null")
            times.append(time.perf_counter() - t)
            page.close()
        b.close()
    return sorted(times)[1]


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[dict, float, float]:
    """``(result, wall seconds, peak RSS in GB)`` of one `imgatlas run` in a fresh process."""
    code = ("import resource, subprocess, sys, json; r = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); u = resource.getrusage(resource.RUSAGE_CHILDREN)"
            "; print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, "
            "'rss': u.ru_maxrss}))")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - t
    r = json.loads(proc.stdout)
    if r["rc"]:
        sys.exit(f"imgatlas run failed: {r['err'].strip()}")
    return json.loads(r["out"]), wall, r["rss"] / 2**20


def one_size(n: int, tmp: Path, env: dict[str, str], model_sample: int, cache: Path | None,
             precision: str = "auto", against: Path | None = None) -> dict:
    root = tmp / f"n{n}"
    paths = build_folder(root / "images", n, root / "extra")
    sample = paths[:min(model_sample, n)]
    per_image = [model_only(sample, cache)]
    per_image8 = [model_only(sample, cache, int8=True)]
    cmd = [str(Path(sys.executable).parent / "imgatlas"), "run", str(root / "images"),
           "--workspace", str(root / "ws"), "--labels-from-folders", "--json",
           "--no-progress", "--precision", precision]
    before = run_against(cmd, env, against, root / "ws-against-1")
    res, wall, rss = run_once(cmd, env)
    after = run_against(cmd, env, against, root / "ws-against-2")
    open_s = time_report_open(Path(res["report"]["index"]))
    per_image8.append(model_only(sample, cache, int8=True))
    per_image.append(model_only(sample, cache))
    shutil.copytree(root / "extra", root / "images", dirs_exist_ok=True)
    again, wall2, _ = run_once(cmd, env)
    model_s = float(np.mean(per_image)) * n
    return {"n": n, "steps": res["seconds"], "wall": wall, "rss_gb": rss, "model_s": model_s,
            "model8_s": float(np.mean(per_image8)) * n,
            "model_spread": abs(per_image[0] - per_image[1]) / np.mean(per_image),
            "ratio": wall / model_s, "rerun": wall2, "rerun_steps": again["seconds"],
            "rerun_cluster": again["cluster"], "cluster": res["cluster"],
            "precision": res["embed"].get("precision", "fp32"),
            "acc": (res["evaluation"] or {}).get("acc"), "report": res["report"],
            "open_s": open_s,
            "against": None if against is None else {
                "walls": [before[1], after[1]], "steps": [before[0]["seconds"],
                                                         after[0]["seconds"]]}}


def run_against(cmd: list[str], env: dict[str, str], src: Path | None, ws: Path
                ) -> tuple[dict, float, float] | None:
    """The same job with the imgatlas of ``src`` (a worktree's src/) in workspace ``ws``."""
    if src is None:
        return None
    cmd = [*cmd]
    cmd[cmd.index("--workspace") + 1] = str(ws)
    return run_once(cmd, {**env, "PYTHONPATH": str(src)})


def worktree(ref: str, tmp: Path) -> Path:
    """A checkout of git ref ``ref`` under ``tmp``; its src/ folder."""
    dst = tmp / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(dst), ref],
                   check=True, capture_output=True)
    return dst / "src"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--model-sample", type=int, default=2000,
                    help="images the model-only time is measured on (scaled to the size)")
    ap.add_argument("--cold-cache", action="store_true",
                    help="empty model cache: count the one-time ONNX export")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"],
                    help="what `imgatlas run` embeds with (auto: int8 for the default)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--against", metavar="REF",
                    help="also time the job with the code of this git ref, side by side")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_run_"))
    against = worktree(args.against, tmp) if args.against else None
    try:
        env = dict(os.environ)
        cache = None
        if args.cold_cache:
            cache = tmp / "model-cache"
            env["IMGATLAS_CACHE"] = str(cache)
        rows = [one_size(int(n), tmp, env, args.model_sample, cache, args.precision, against)
                for n in args.sizes.split(",")]
        stages = ["scan", "embed", "inspect", "cluster", "evaluate", "report"]
        lines = preamble("onnxruntime", "faiss", "umap") + [
            "Images: dev CIFAR-10 JPG 32x32 and Fashion-MNIST PNG 28x28, half each, 20 "
            "folders (the 100 added for the rerun: Fashion-MNIST files not among them); "
            f"empty workspace, {'empty' if args.cold_cache else 'warm'} model cache; "
            f"`imgatlas run --precision {args.precision}` in a fresh process (wall time "
            "includes Python start-up). *Model alone*: the default backbone's fp32 graph "
            "(and its int8 graph, the last column) on pre-decoded 224x224 tensors, batch 32, "
            f"per-image time on {args.model_sample:,} images measured before and after the run "
            "in the same process (their mean), times the number of images.", "",
            "| images | embedded at | " + " | ".join(stages) + " | whole job | model alone "
            "(fp32) | **job / fp32 model** | peak RSS | +100 images, run again | rerun / first "
            "| int8 model alone | embed / int8 model |",
            "|---:|---|" + "---:|" * (len(stages) + 8)]
        for r in rows:
            cells = [f"{r['steps'].get(s, 0):.1f}" for s in stages]
            lines.append(
                f"| {r['n']:,} | {r['precision']} | " + " | ".join(cells) +
                f" | {r['wall']:.1f} | {r['model_s']:.1f} | **{r['ratio']:.2f}** | "
                f"{r['rss_gb']:.2f} GB | {r['rerun']:.1f} | {r['rerun'] / r['wall']:.2f} | "
                f"{r['model8_s']:.1f} | {r['steps']['embed'] / r['model8_s']:.2f} |")
        lines.append("")
        for r in rows:
            cl, rc = r["cluster"], r["rerun_cluster"]
            lines.append(
                f"- {r['n']:,} images: {cl['n_clusters']} clusters (k auto: "
                f"{(cl.get('k_selection') or {}).get('reason', 'given')}); cluster timings "
                f"{cl['timings']}; report {r['report']['seconds']:.1f} s ({r['report']['map']} "
                f"map, {r['report']['bytes'] / 2**20:.1f} MB, opens to the map drawn in "
                + (f"{r['open_s']:.2f} s in headless Chromium" if r["open_s"] is not None
                   else "(not measured: no Chromium)")
                + f"); ACC against the folders {r['acc']:.3f}; the model-only time moved "
                f"{100 * r['model_spread']:.0f} % between before and after. Rerun with 100 new "
                f"images: stages {r['rerun_steps']}; "
                + (f"the clusters kept, run {rc['run_id']} derived from run "
                   f"{rc.get('derived_from')} ({rc['edit']['added']} images placed)"
                   if rc.get("derived_from") else "clustered again") + ".")
        for r in rows:
            if r["against"] is not None:
                base = float(np.mean(r["against"]["walls"]))
                lines.append(
                    f"- Side by side, {r['n']:,} images: the same job with the code of "
                    f"`{args.against}` before and after this run took "
                    f"{r['against']['walls'][0]:.1f} and {r['against']['walls'][1]:.1f} s "
                    f"(stages {r['against']['steps'][0]}); this code {r['wall']:.1f} s, "
                    f"**{r['wall'] / base:.2f}** of it.")
        body = "\n".join(lines)
        print(body)
        if not args.no_write:
            write_section(ROOT / "benchmarks" / "RESULTS.md",
                          "The whole job against the model alone", body)
    finally:
        if against is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(against.parent)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
