"""The whole job: `imgatlas run` on 10,000 images from an empty workspace, step by step.

The images are the dev CIFAR-10 set (5,000 JPG, 32x32) plus 5,000 Fashion-MNIST PNGs
(500 per class), copied into one folder tree (20 labelled folders). The run starts from an
empty workspace and, with ``--cold-cache``, an empty model cache too (so the one-time ONNX
export of the default backbone is counted). Then the report is opened in headless Chromium
to time it to the ``load`` event, and its folder size is measured.

    python benchmarks/bench_run.py [--n 10000] [--cold-cache]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, class_balanced, preamble, write_section  # noqa: E402


def build_folder(dst: Path, n: int) -> int:
    half = n // 2
    sets = [("cifar10", half, ""), ("fashion-mnist", n - half, "fmnist-")]
    count = 0
    for name, m, prefix in sets:
        for p in class_balanced(SHARED / name, m):
            d = dst / f"{prefix}{p.parent.name}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, d / p.name)
            count += 1
    return count


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--cold-cache", action="store_true",
                    help="empty model cache: count the one-time ONNX export")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        n = build_folder(tmp / "images", args.n)
        env = dict(os.environ)
        if args.cold_cache:
            env["IMGATLAS_CACHE"] = str(tmp / "model-cache")
        cmd = [str(Path(sys.executable).parent / "imgatlas"), "run", str(tmp / "images"),
               "--workspace", str(tmp / "ws"), "--labels-from-folders", "--json",
               "--no-progress"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"imgatlas run failed: {proc.stderr.strip()}")
        res = json.loads(proc.stdout)
        index = Path(res["report"]["index"])
        open_s = time_report_open(index)
        size = res["report"]["bytes"]
        # a second run on the same folder: everything is reused
        t = time.perf_counter()
        again = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall2 = time.perf_counter() - t
        steps = res["seconds"]
        cl = res["cluster"]
        lines = preamble("onnxruntime", "faiss", "umap")
        lines += [
            f"{n:,} images (5,000 CIFAR-10 JPG 32x32 + 5,000 Fashion-MNIST PNG 28x28, 20 "
            f"folders), empty workspace, {'empty' if args.cold_cache else 'warm'} model "
            "cache. One run, alone on the machine.",
            "",
            "| step | seconds |",
            "|---|---:|",
            *[f"| {k} | {v:.1f} |" for k, v in steps.items()],
            f"| **whole command (wall, incl. Python start-up)** | **{wall:.1f}** |",
            "",
            f"Cluster step: {cl['n_clusters']} clusters (k auto: "
            f"{(cl.get('k_selection') or {}).get('reason', 'given')}); internal timings "
            f"{cl['timings']}. Report step: {res['report']['seconds']:.1f} s including the "
            f"2-D map ({res['report']['map']}) and 10,000 thumbnails.",
            f"ACC against the 20 folder labels: {res['evaluation']['acc']:.3f}.",
            f"Report folder: {size / 2**20:.1f} MB; opens (to the load event, map drawn) in "
            + (f"{open_s:.2f} s in headless Chromium (median of 3)." if open_s is not None
               else "not measured (no Chromium/Playwright)."),
            f"Second `imgatlas run` on the same folder (everything reused, report rewritten): "
            f"{wall2:.1f} s"
            + ("" if again.returncode == 0 else f" (failed: {again.stderr.strip()})") + ".",
        ]
        body = "\n".join(lines)
        print(body)
        if not args.no_write:
            write_section(ROOT / "benchmarks" / "RESULTS.md", "The whole job on 10,000 images",
                          body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
