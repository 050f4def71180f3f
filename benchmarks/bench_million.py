"""A million images end to end, in bounds: wall time and peak RSS of every stage, each run
as its own `imgatlas` process (peak RSS from wait4, so one stage's memory cannot hide in
another's).

Part 1, a real collection: the 15,000 Fashion-MNIST and CIFAR-10 dev images, each saved
N times with its pixels rolled by a different offset (distinct files, distinct content:
nothing is skipped as a duplicate) up to --real images; `imgatlas scan` and `imgatlas embed`
(the default backbone at its default precision, local engine), then the same images again
into a second workspace on the Ray engine (a local cluster on the same machine): its
overhead.

Part 2, a million: --copies hard links to every file of part 1 (so scan and the report read
real files), scanned; the feature store is then written with part 1's vectors replicated
with Gaussian noise (half the median nearest-neighbour distance, as
bench_search_scale.py), one per image; then `imgatlas cluster --sample-size`, `imgatlas
index --shard-size` and `imgatlas report`. Target on 2 cores: cluster + index + report
<= 5 minutes and <= 4 GB peak RSS.

    python benchmarks/bench_million.py [--real 100000] [--copies 10]

Writes "A million images" in benchmarks/RESULTS.md. Work files go to --work (default
benchmarks/_work/million; ~7 GB).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import ROOT, SHARED, git_rev, preamble, write_section

IMGATLAS = [str(Path(sys.executable).parent / "imgatlas")]


def stage(name: str, argv: list[str], log: list[tuple[str, float, float]]) -> float:
    """Run one imgatlas command; record its wall time and peak RSS (MB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(IMGATLAS + argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {err.strip()[-2000:]}")
    log.append((name, secs, usage.ru_maxrss / 1024))
    print(f"{name}: {secs:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB", flush=True)
    return secs


def make_real(out: Path, n: int) -> int:
    """n distinct small images from the dev sets' Fashion-MNIST and CIFAR-10 folders."""
    files = sorted(glob.glob(str(SHARED / "fashion-mnist" / "*" / "*")) +
                   glob.glob(str(SHARED / "cifar10" / "*" / "*")))
    if not files:
        raise SystemExit(f"No dev images under {SHARED}.")
    made = 0
    for copy in range(-(-n // len(files))):
        for f in files:
            if made >= n:
                return made
            src = Path(f)
            dst = out / f"v{copy}" / src.parent.parent.name / src.parent.name / src.name
            if copy:
                dst = dst.with_suffix(".png")
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                if copy == 0:
                    shutil.copy(src, dst)
                else:  # same picture, pixels rolled: other bytes, other content hash
                    a = np.roll(np.asarray(Image.open(src)), copy, axis=1)
                    Image.fromarray(a).save(dst)
            made += 1
    return made


def link_million(real: Path, out: Path, copies: int) -> None:
    files = [p for p in real.rglob("*") if p.is_file()]
    for j in range(copies):
        for p in files:
            dst = out / f"c{j}" / p.relative_to(real)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(p, dst)


def write_million_store(real_ws: Path, ws: Path, seed: int = 0) -> str:
    """Part 1's vectors replicated with noise into ws's store, one row per image."""
    import faiss

    from imgatlas.store import FeatureStore, Workspace

    with Workspace.open(real_ws) as w:
        (src,) = [s for s in w.feature_stores()]
        rids, R = src.read()
        key, backbone, cfg = src.key, src.backbone, src.cfg
        sha_of = {r.id: r.sha256 for r in w.images()}
    R = R / np.linalg.norm(R, axis=1, keepdims=True)
    pos_of = {sha_of[int(i)]: k for k, i in enumerate(rids)}
    flat = faiss.IndexFlatL2(R.shape[1])
    flat.add(R[:20000])
    nn = float(np.median(np.sqrt(flat.search(R[:20000], 2)[0][:, 1])))
    sigma = 0.5 * nn / np.sqrt(R.shape[1])
    rng = np.random.default_rng(seed)
    with Workspace.open(ws, write=True) as w:
        store = FeatureStore.ensure(w, key, backbone, cfg, R.shape[1], "float32")
        rows = w.images()
        with store.open_writer(w.max_image_id()) as writer:
            for a in range(0, len(rows), 50_000):
                part = rows[a:a + 50_000]
                X = R[[pos_of[r.sha256] for r in part]]
                X = X + sigma * rng.normal(size=X.shape).astype(np.float32)
                writer.write(np.array([r.id for r in part]), X.astype(np.float32))
    record_tags(ws)
    return (f"{len(R):,} real vectors replicated to one per image with Gaussian noise of "
            f"norm ~{0.5 * nn:.3f} (half the median nearest-neighbour distance)")


def record_tags(ws: Path) -> None:
    """Each image's ImageNet tags, as `imgatlas embed` records them with its vectors (the
    report names the clusters from them); a no-op where they are recorded already."""
    from imgatlas.names import ensure_tags
    from imgatlas.store import Workspace

    with Workspace.open(ws, write=True) as w:
        for store in w.feature_stores():
            ensure_tags(w, store)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, default=100_000)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--k", default="20")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work" / "million")
    ap.add_argument("--stages-only", action="store_true",
                    help="reuse part 1 and the scanned million from an earlier run (their "
                         "figures are read back) and measure cluster, index and report again")
    args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    cache = ["--cache-dir", str(ROOT / "benchmarks" / "_work" / "cache")]
    log: list[tuple[str, float, float]] = []
    lines = preamble("onnxruntime", "faiss", "ray")
    n_pre = len(lines)

    # -- part 1: a real collection --------------------------------------------------------
    real, rws = w / "real", w / "real.imgatlas"
    saved = w / "earlier.json"
    if args.stages_only:
        earlier = json.loads(saved.read_text())
        lines += [f"Part 1 and the scan of the million: measured by the full run at commit "
                  f"{earlier.get('commit', '?')}, {earlier.get('date', '?')}; reused here "
                  "(`--stages-only`).", ""] + earlier["lines"]
        log += [tuple(x) for x in earlier["log"]]
    else:
        t = time.perf_counter()
        n = make_real(real, args.real)
        print(f"made {n:,} images in {time.perf_counter() - t:.0f} s", flush=True)
        shutil.rmtree(rws, ignore_errors=True)
        stage("scan (real)", ["scan", str(real), "--workspace", str(rws),
                              "--labels-from-folders"], log)
        emb = stage("embed (real, local engine)", ["embed", "--workspace", str(rws)] + cache,
                    log)
        per_image = emb / args.real
        # the same collection again on the Ray engine (a local cluster on this machine)
        rws2 = w / "real-ray.imgatlas"
        shutil.rmtree(rws2, ignore_errors=True)
        stage("scan (real, again)", ["scan", str(real), "--workspace", str(rws2)], [])
        ray_secs = stage("embed (real, Ray engine)",
                         ["embed", "--workspace", str(rws2), "--engine", "ray"] + cache, log)
        ray_ratio = ray_secs / emb
        lines += [f"Part 1: {args.real:,} real images ({n:,} made: the Fashion-MNIST and "
                  "CIFAR-10 dev images, each saved again with its pixels rolled by 1, 2, ... "
                  "columns, so every file is distinct), default backbone at its default "
                  "precision (auto: int8 for EfficientNet-Lite).", "",
                  f"Embedding: **{1000 * per_image:.2f} ms per image** "
                  f"({args.real / emb:.0f} img/s) on the local engine.",
                  f"Ray engine against local on the same machine, the same {args.real:,} "
                  f"images one after the other (includes starting a local Ray cluster): "
                  f"local {emb:.0f} s, Ray {ray_secs:.0f} s, **overhead "
                  f"{100 * (ray_ratio - 1):+.0f} %**.",
                  ""]

    # -- part 2: a million ----------------------------------------------------------------
    big, bws = w / "links", w / "million.imgatlas"
    if args.stages_only:
        desc = earlier["desc"]
        record_tags(bws)  # workspaces made before the benchmark recorded them
        subprocess.run(IMGATLAS[:1] + ["--help"], capture_output=True)  # warm the imports
    else:
        t = time.perf_counter()
        link_million(real, big, args.copies)
        print(f"linked in {time.perf_counter() - t:.0f} s", flush=True)
        shutil.rmtree(bws, ignore_errors=True)
        stage("scan (1M hard links)", ["scan", str(big), "--workspace", str(bws),
                                       "--labels-from-folders"], log)
        t = time.perf_counter()
        desc = write_million_store(rws, bws)
        print(f"store written in {time.perf_counter() - t:.0f} s", flush=True)
        saved.write_text(json.dumps({"lines": lines[n_pre:], "log": log, "desc": desc,
                                     "commit": git_rev(), "date": time.strftime("%Y-%m-%d")}))
    c = stage("cluster (sample 100k, assign in shards)",
              ["cluster", "--workspace", str(bws), "--k", args.k,
               "--sample-size", "100000"], log)
    i = stage("index (ivfpq:64 in shards)", ["index", "--workspace", str(bws), "--codes",
                                             "ivfpq:64", "--shard-size", "65536"], log)
    r = stage("report (sampled map, capped pages)",
              ["report", "--workspace", str(bws), "--out", str(w / "million-report")], log)
    peak = max(m for name, _, m in log if name.startswith(("cluster", "index", "report")))
    total = c + i + r
    ok = "meets" if total <= 300 and peak <= 4096 else "misses"
    lines += [f"Part 2: {args.copies} hard links to each part-1 file (1,000,000 catalogue "
              f"rows, real files); vectors: {desc}. k = {args.k} given.", "",
              "| stage | wall s | peak RSS MB |", "|---|---:|---:|"]
    lines += [f"| {name} | {secs:.1f} | {mb:.0f} |" for name, secs, mb in log]
    lines += ["", f"cluster + index + report: **{total / 60:.1f} min, peak {peak / 1024:.1f} "
              f"GB** ({ok} the target of 5 min and 4 GB on 2 cores)."]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "A million images", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
