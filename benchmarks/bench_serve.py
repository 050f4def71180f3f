"""The web app under load: search by upload on a 10,000-image workspace, 127.0.0.1, 2 cores.

The workspace: the dev CIFAR-10 images (5,000) and 5,000 dev Fashion-MNIST images, embedded,
clustered, indexed with the default code. The server: `imgatlas serve` in its own process
(one uvicorn worker, the model and index loaded once). The queries: dev clothing photos
(not in the workspace), 400x533 JPEGs, uploaded as a browser would (multipart).

Load model (stated, since a latency figure means nothing without it): C concurrent clients,
each starting at a random moment in the first 2T seconds, uploading one photo, waiting for
the answer, then pausing a random think time (exponential, mean T seconds), for D seconds.
Then the same clients with no pause (saturation: what one server can take). Also the time
of a page of the largest cluster, first and last page.

    python benchmarks/bench_serve.py [--clients 50] [--think 1.0] [--seconds 60]

Writes the section "Web app under load" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, class_balanced, preamble, write_section
from imgatlas import api

WORK = ROOT / "benchmarks" / "_work"


def workspace() -> Path:
    ws = WORK / "serve10k"
    if not (ws / "catalog.sqlite").exists():
        src = WORK / "serve10k-images"
        src.mkdir(parents=True, exist_ok=True)
        for name, n in (("cifar10", 5000), ("fashion-mnist", 5000)):
            for f in class_balanced(SHARED / name, n):
                d = src / f"{name}-{f.parent.name}"
                d.mkdir(exist_ok=True)
                if not (d / f.name).exists():
                    os.symlink(f, d / f.name)
        api.scan(src, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=WORK / "cache")
    if not api.runs(ws, "cluster"):
        api.cluster(ws, k=20)
    if not api.runs(ws, "index"):
        api.build_index(ws)
    return ws


async def client(url: str, photos: list[bytes], think: float, until: float,
                 out: list[float], errors: list[str], seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    if think:  # arrivals staggered as a person's would be, not 50 at the same instant
        await asyncio.sleep(rng.uniform(0, 2 * think))
    async with httpx.AsyncClient(timeout=60) as c:
        while time.perf_counter() < until:
            data = rng.choice(photos)
            t = time.perf_counter()
            r = await c.post(url + "/api/search", files={"image": ("q.jpg", data,
                                                                    "image/jpeg")},
                             data={"k": "10"})
            dt = time.perf_counter() - t
            if r.status_code == 200 and len(r.json()["results"]) == 10:
                out.append(dt)
            else:
                errors.append(f"{r.status_code}")
            if think:
                await asyncio.sleep(rng.expovariate(1 / think))


def load(url: str, photos: list[bytes], clients: int, think: float, seconds: float
         ) -> dict:
    out: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + seconds

    async def main() -> None:
        await asyncio.gather(*(client(url, photos, think, until, out, errors, k)
                               for k in range(clients)))

    t = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t
    ms = np.array(out) * 1000
    return {"n": len(out), "errors": len(errors), "rate": len(out) / wall,
            "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def page_times(url: str, cluster: int, pages: int) -> dict:
    import httpx

    out = {}
    with httpx.Client(timeout=60) as c:
        for p in (1, pages):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                r = c.get(f"{url}/clusters/{cluster}?page={p}")
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            out[p] = statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--think", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--port", type=int, default=8799)
    args = ap.parse_args()
    ws = workspace()
    photos = [p.read_bytes() for p in class_balanced(SHARED / "clothing", 100)]
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "IMGATLAS_CACHE": str(WORK / "cache")}
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "imgatlas.cli", "serve", "-w", str(ws),
                               "--port", str(args.port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        while True:
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise SystemExit(server.stdout.read()) from None
                time.sleep(0.2)
        startup = time.perf_counter() - t0
        load(url, photos, 2, 0, 3)  # warm: first requests pay for lazy imports
        paced = load(url, photos, args.clients, args.think, args.seconds)
        flat = load(url, photos, args.clients, 0, args.seconds / 2)
        clusters = httpx.get(url + "/api/clusters").json()["clusters"]
        big = max(clusters, key=lambda c: c["size"])
        pages = -(-big["size"] // 60)
        pt = page_times(url, big["id"], pages)
    finally:
        server.terminate()
        server.wait(10)
    n = api.status(ws)["usable"]
    lines = preamble("fastapi", "uvicorn", "onnxruntime") + [
        f"Workspace: {n:,} images (dev CIFAR-10 + Fashion-MNIST), default index "
        f"(`{api.runs(ws, 'index')[-1]['params']['codes']}`). Server: `imgatlas serve`, one "
        f"process, started and ready in {startup:.1f} s. Queries: 100 dev clothing photos "
        "(400x533 JPEG, not in the workspace), uploaded (multipart) to `POST /api/search`, "
        "k = 10; each answer decoded, embedded, searched and annotated (cluster, label). The "
        "load generator runs on the same 2 cores as the server. Clients start at random "
        "moments in the first 2 think times; started all at the same instant, the first "
        "second's burst of 50 uploads queues (p99 near 1.8 s in that second, then 80-120 ms: "
        "a probe run), which the saturation row also shows.", "",
        "| load | answers | errors | answers/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in ((f"{args.clients} clients, think time exp(mean {args.think:g} s), "
                     f"{args.seconds:g} s", paced),
                    (f"{args.clients} clients, no think time (saturation), "
                     f"{args.seconds / 2:g} s", flat)):
        lines.append(f"| {name} | {r['n']} | {r['errors']} | {r['rate']:.1f} | "
                     f"{r['p50']:.0f} | {r['p90']:.0f} | {r['p99']:.0f} | {r['max']:.0f} |")
    lines += ["", f"The largest cluster ({big['size']:,} images, {pages} pages of 60): page 1 "
              f"in {pt[1]:.0f} ms, page {pages} in {pt[pages]:.0f} ms (median of 5; thumbnails "
              "are separate, cached requests)."]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Web app under load", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
