"""Foundation backbones on this machine: images/s at fp32 and at int8 for dinov2-small,
dinov2-base, clip-vit-b32, clip-vit-b16 and siglip-base beside the default EfficientNet-Lite0,
measured in one run; then the whole job on N images with dinov2-small.

No foundation weights can be downloaded here, so each model is randomly initialised at its
published size and written into a temporary Hugging Face cache under its real repo name
(``imgatlas.backbones.hf._fake``), then opened exactly as a user's download would be
(HF_HUB_OFFLINE=1): exported to ONNX, checked against PyTorch, int8 gated. Random weights at
the real size cost what the real ones cost; the int8 agreement of random weights says
nothing of the real ones' (their export measures it for themselves).

1. Speed: the image tower alone on the same pre-decoded photos (dev Imagenette, at each
   model's input size), batch 32, 2 threads, fp32 then int8, the pair timed twice (the
   mean: the shared machine drifts). Also the export's one-time cost.
2. Whole job: ``imgatlas run DIR --backbone dinov2-small`` on N images (half dev CIFAR-10,
   half Fashion-MNIST, as bench_run.py) in a fresh process: wall time, its stages, peak
   memory; then 100 new images and the same command again.

    python benchmarks/bench_foundation.py [--models ...] [--images 96] [--whole-job 10000]

Writes "Foundation backbones" in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, class_balanced, preamble, write_section  # noqa: E402

MODELS = ["dinov2-small", "dinov2-base", "clip-vit-b32", "clip-vit-b16", "siglip-base"]


def photos(n: int) -> list[Path]:
    return class_balanced(SHARED / "imagenette", n)


def model_speed(bb, files: list[Path], reps: int = 2) -> tuple[float, float]:
    """(fp32, int8) images/s of the graph alone on pre-decoded pixels."""
    from imgatlas.backbones import run_features
    from imgatlas.decode import decode_rgb
    from imgatlas.embed import Embedder

    cfg = bb.cfg
    pix = np.stack([decode_rgb(f, cfg.input_size, resize=cfg.resize,
                               interpolation=cfg.interpolation) for f in files])
    from imgatlas.embed._int8 import MODEL_DIR  # noqa: F401  (the int8 path is the run's)

    q = bb.quantized() if bb.quantized is not None else None
    if q is None:
        from imgatlas.backbones import bundled_int8

        q = bundled_int8(bb)
    sessions = [Embedder(b, threads=2).session for b in (bb, q)]
    for s, b in zip(sessions, (bb, q), strict=True):
        run_features(s, b.cfg, pix[:8])  # warm
    times = [[], []]
    for _ in range(reps):
        for j, (s, b) in enumerate(zip(sessions, (bb, q), strict=True)):
            t = time.perf_counter()
            for i in range(0, len(pix), 32):
                run_features(s, b.cfg, pix[i:i + 32])
            times[j].append(time.perf_counter() - t)
    return tuple(len(pix) / float(np.mean(t)) for t in times)  # type: ignore[return-value]


def speed(models: list[str], n_images: int, hub: Path, cache: Path) -> list[str]:
    from imgatlas.backbones import create_backbone
    from imgatlas.backbones.hf import CATALOG
    from imgatlas.backbones.hf._fake import write_fake_model

    files = photos(n_images)
    rows = ["| backbone | dim | params (M) | fp32 img/s | int8 img/s | int8 / fp32 | "
            "int8 cosine to fp32 (calibration, mean / min) | x Lite0 fp32 time | "
            "export once (s) |", "|---|---|---|---|---|---|---|---|---|"]
    lite = create_backbone("efficientnet_lite0", cache_dir=cache)
    lf, li = model_speed(lite, files)
    print(f"efficientnet_lite0: fp32 {lf:.1f} int8 {li:.1f} img/s", flush=True)
    rows.append(f"| efficientnet_lite0 (default) | 1280 | 4.7 | {lf:.1f} | {li:.1f} | "
                f"{li / lf:.2f}x | (static int8, bench_int8_default) | 1.0 | - |")
    for name in models:
        e = CATALOG[name]
        write_fake_model(hub, e.repo, e.family, size=name)
        t = time.perf_counter()
        bb = create_backbone(name, cache_dir=cache)
        export_s = time.perf_counter() - t
        spec = json.loads((bb.onnx_path().parent / "spec.json").read_text())
        a = spec["image"]["int8_agreement"]
        if spec["image"]["int8"] is None:
            rows.append(f"| {name} | {spec['dim']} | {e.params_m} | - | - | int8 refused | "
                        f"{a['mean']:.4f} / {a['min']:.4f} | - | {export_s:.0f} |")
            continue
        f32, i8 = model_speed(bb, files)
        print(f"{name}: fp32 {f32:.1f} int8 {i8:.1f} img/s, export {export_s:.0f} s, "
              f"int8 cos {a['mean']:.4f}", flush=True)
        rows.append(f"| {name} | {spec['dim']} | {e.params_m} | {f32:.1f} | {i8:.1f} | "
                    f"{i8 / f32:.2f}x | {a['mean']:.4f} / {a['min']:.4f} | "
                    f"{lf / i8:.1f} | {export_s:.0f} |")
    return rows


_WRAPPER = """
import json, resource, subprocess, sys
r = subprocess.run([sys.executable, "-m", "imgatlas", "run", sys.argv[1], "--workspace",
                    sys.argv[2], "--backbone", "dinov2-small", "--json"],
                   capture_output=True, text=True)
if r.returncode:
    sys.stderr.write(r.stderr)
    sys.exit(r.returncode)
print(json.dumps({"result": json.loads(r.stdout),
                  "rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def whole_job(n: int, hub: Path, cache: Path, env: dict[str, str]) -> list[str]:
    from bench_run import build_folder
    from imgatlas.backbones.hf._fake import write_fake_model

    write_fake_model(hub, "facebook/dinov2-small", "dinov2", size="dinov2-small")
    from imgatlas.backbones import create_backbone

    create_backbone("dinov2-small", cache_dir=cache)  # exported here, once, not in the job
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        src, extra, ws = Path(tmp, "images"), Path(tmp, "extra"), Path(tmp, "ws")
        build_folder(src, n, extra)
        for label in ("first run", "100 new images"):
            if label != "first run":
                for d in extra.iterdir():
                    (src / d.name).mkdir(exist_ok=True)
                    for f in d.iterdir():
                        f.rename(src / d.name / f.name)
            # in a fresh wrapper process, whose children's peak is the run's alone (this
            # process may hold the exported models: a child forked from it would start
            # with its pages counted)
            cmd = [sys.executable, "-c", _WRAPPER, str(src), str(ws)]
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if r.returncode:
                raise SystemExit(f"run failed: {r.stderr.strip()[-500:]}")
            out_line = json.loads(r.stdout.strip().splitlines()[-1])
            peak = out_line["rss_kb"] / 2**20
            res = out_line["result"]
            stages = res.get("seconds") or {}
            shown = ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()
                              if isinstance(v, int | float))
            print(f"{label}: {wall:.1f} s, peak {peak:.2f} GB; {shown}", flush=True)
            out.append(f"| {label} | {wall:.1f} | {peak:.2f} | {shown or '-'} |")
    return ["| run | wall (s) | peak RSS (GB) | stages |",
            "|---|---|---|---|", *out]


def embed_end_to_end(n: int, hub: Path, cache: Path) -> list[str]:
    """``embed`` of ``n`` dev Imagenette photos with dinov2-small, fp32 then int8 then fp32
    again (the mean of the two fp32 runs), each into a fresh workspace: decode and all."""
    from imgatlas import api
    from imgatlas.backbones.hf._fake import write_fake_model

    write_fake_model(hub, "facebook/dinov2-small", "dinov2", size="dinov2-small")
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "photos")
        for f in photos(n):
            (src / f.parent.name).mkdir(parents=True, exist_ok=True)
            (src / f.parent.name / f.name).write_bytes(f.read_bytes())
        for k, precision in enumerate(["fp32", "int8", "fp32"]):
            ws = Path(tmp, f"ws{k}")
            api.scan(src, ws)
            t = time.perf_counter()
            api.embed(ws, backbone="dinov2-small", precision=precision, cache_dir=cache)
            times[precision].append(time.perf_counter() - t)
            print(f"embed {precision}: {times[precision][-1]:.1f} s", flush=True)
    f32, i8 = float(np.mean(times["fp32"])), float(np.mean(times["int8"]))
    return ["| precision | embed s | images/s |", "|---|---|---|",
            f"| fp32 (mean of the runs before and after) | {f32:.1f} | {n / f32:.1f} |",
            f"| int8 (the default, where it agrees) | {i8:.1f} | {n / i8:.1f} |", "",
            f"int8 embeds dinov2-small at **{f32 / i8:.2f}x** its fp32 speed end to end."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--whole-job", type=int, default=10_000,
                    help="images for the whole job (0: skip it)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--embed", type=int, default=0,
                    help="only `embed` N photos with dinov2-small at fp32 and int8, end to "
                         "end (its own section)")
    args = ap.parse_args()
    if args.embed:
        with tempfile.TemporaryDirectory() as tmp:
            hub, cache = Path(tmp, "hf", "hub"), Path(tmp, "imgatlas-cache")
            os.environ.update(HF_HOME=str(Path(tmp, "hf")), HF_HUB_OFFLINE="1",
                              IMGATLAS_CACHE=str(cache))
            body = preamble("onnxruntime") + [
                f"`imgatlas embed` of {args.embed} dev Imagenette photos (decode included) "
                "with dinov2-small, randomly initialised at its real size, into fresh "
                "workspaces: fp32, int8, fp32 again.", ""]
            body += embed_end_to_end(args.embed, hub, cache)
        write_section(ROOT / "benchmarks" / "RESULTS.md",
                      "Foundation backbones: int8 against fp32 end to end", "\n".join(body))
        return
    with tempfile.TemporaryDirectory() as tmp:
        hub, cache = Path(tmp, "hf", "hub"), Path(tmp, "imgatlas-cache")
        os.environ.update(HF_HOME=str(Path(tmp, "hf")), HF_HUB_OFFLINE="1",
                          IMGATLAS_CACHE=str(cache))
        body = preamble("onnxruntime", "transformers", "torch")
        body += ["Randomly initialised models at the published sizes, in a temporary Hugging "
                 "Face cache, opened offline as a download would be. Model-only speed: "
                 f"{args.images} dev Imagenette photos pre-decoded at each input size, "
                 "batch 32, 2 threads; fp32 and int8 timed alternately, twice, the mean. "
                 "int8 = dynamic QInt8 MatMul weights, kept only when its features of the "
                 "shipped calibration images agree with fp32's (mean cosine >= 0.99, "
                 "lowest >= 0.97). 'x Lite0' = how many times the default's fp32 time per "
                 "image the model takes at its default precision.", ""]
        if not args.skip_speed:
            body += speed([m for m in args.models.split(",") if m], args.images, hub, cache)
            write_section(ROOT / "benchmarks" / "RESULTS.md", "Foundation backbones",
                          "\n".join(body))
        if args.whole_job:
            job = preamble("onnxruntime") + [
                f"`imgatlas run DIR --backbone dinov2-small` on {args.whole_job:,} images "
                "(half dev CIFAR-10, half Fashion-MNIST; dinov2-small randomly initialised at "
                "its real size), a fresh process each time, the model exported before (the "
                "export is a one-time cost: RESULTS 'Foundation backbones'); then 100 new "
                "images and the same command again.", ""]
            job += whole_job(args.whole_job, hub, cache, dict(os.environ))
            write_section(ROOT / "benchmarks" / "RESULTS.md",
                          "Foundation backbones: the whole job", "\n".join(job))


if __name__ == "__main__":
    main()
