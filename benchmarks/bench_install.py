"""Installed size of the core and of each extra, each in a fresh virtual environment, and
the proof that the core runs the whole job without PyTorch.

For every variant: ``python -m venv``, ``pip install .[extra]`` (torch==2.13.0 first where
the extra needs PyTorch, as the README says), then the size of the venv's site-packages.
The core venv then runs ``imgatlas run samples/clothing`` with PyTorch absent (checked).

    python benchmarks/bench_install.py [--extras train lite kmedoids] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, preamble, write_section  # noqa: E402

NEEDS_TORCH = {"train"}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _site(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def install(variant: str, base: Path, src: Path) -> dict:
    venv = base / (variant or "core")
    t = time.perf_counter()
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run(pip + ["--upgrade", "pip"])
    empty = _size(_site(venv))
    if variant in NEEDS_TORCH:
        _run(pip + ["torch==2.13.0"])
    _run(pip + [f"{src}[{variant}]" if variant else str(src)])
    site = _site(venv)
    has_torch = (site / "torch").exists()
    return {"variant": variant or "core", "mb": (_size(site) - empty) / 2**20,
            "seconds": time.perf_counter() - t, "torch": has_torch, "venv": venv}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", nargs="*", default=["train", "lite", "kmedoids"])
    ap.add_argument("--keep", action="store_true", help="keep the venvs (printed)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="imgatlas-install-"))
    # a copy of the tracked tree, as a user's clone would be (no .venv, no build leftovers)
    src = base / "src"
    files = _run(["git", "ls-files"], cwd=ROOT).stdout.split("\n")
    for f in filter(None, files):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    rows = []
    try:
        core = install("", base, src)
        rows.append(core)
        py = str(core["venv"] / "bin" / "python")
        probe = subprocess.run([py, "-c", "import torch"], capture_output=True)
        assert probe.returncode != 0, "torch is importable in the core venv"
        t = time.perf_counter()
        job = subprocess.run(
            [str(core["venv"] / "bin" / "imgatlas"), "run", str(src / "samples" / "clothing"),
             "--workspace", str(base / "demo.imgatlas"), "--labels-from-folders", "--json"],
            capture_output=True, text=True, env={"IMGATLAS_CACHE": str(base / "cache"),
                                                 "PATH": "/usr/bin:/bin"})
        if job.returncode != 0:
            raise SystemExit(f"the whole job failed in the core venv: {job.stderr}")
        res = json.loads(job.stdout)
        core_job = (f"`imgatlas run samples/clothing` in the core venv (PyTorch not importable): "
                    f"{res['status']['usable']} images, k = {res['cluster']['n_clusters']}, "
                    f"ACC {res['evaluation']['acc']:.3f}, report written, "
                    f"{time.perf_counter() - t:.0f} s including building the backbone's ONNX "
                    "file from its weights.")
        for extra in args.extras:
            rows.append(install(extra, base, src))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"venvs kept under {base}")
    lines = preamble() + [
        "Each variant is installed into a fresh venv from a copy of the tracked tree; size = "
        "what the install added to site-packages (pip itself excluded).", "",
        "| install | added to site-packages | PyTorch | install time |",
        "|---|---:|---|---:|",
    ]
    core_mb = rows[0]["mb"]
    for r in rows:
        name = "`pip install .`" if r["variant"] == "core" else \
            f"`pip install '.[{r['variant']}]'`" + (" (torch==2.13.0 first)"
                                                     if r["variant"] in NEEDS_TORCH else "")
        extra = "" if r["variant"] == "core" else f" (core + {r['mb'] - core_mb:.0f} MB)"
        lines.append(f"| {name} | {r['mb']:.0f} MB{extra} | {'yes' if r['torch'] else 'no'} "
                     f"| {r['seconds']:.0f} s |")
    lines += ["", core_job]
    write_section(ROOT / "benchmarks" / "RESULTS.md", "Installed size", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
