"""Shared helpers for the benchmark scripts: machine description and data discovery."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kb = int(next(ln for ln in meminfo if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {cores} cores{mem}, {platform.system()} {platform.release()}"


def versions(*mods: str) -> str:
    out = [f"Python {platform.python_version()}"]
    for m in mods:
        try:
            mod = __import__(m)
            out.append(f"{m} {getattr(mod, '__version__', '?')}")
        except ImportError:
            out.append(f"{m} (absent)")
    return ", ".join(out)


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def class_balanced(folder: Path, n: int, exts=(".jpg", ".jpeg", ".png")) -> list[Path]:
    """Up to ``n`` files from ``folder/<class>/``, taken round-robin across classes."""
    per = [sorted(p for p in d.iterdir() if p.suffix.lower() in exts)
           for d in sorted(folder.iterdir()) if d.is_dir()]
    out: list[Path] = []
    k = 0
    while len(out) < n and any(k < len(p) for p in per):
        out += [p[k] for p in per if k < len(p)]
        k += 1
    return out[:n]


def mixed_dev_folder(folder: Path, n: int) -> list[Path]:
    """``n`` dev images of every set, shuffled with a fixed seed, copied into ``folder``
    (a folder per class); returns the whole shuffled pool (what follows the ``n`` serves as
    new images)."""
    import random
    import shutil

    pool: list[Path] = []
    for s in ["clothing", "rooms", "imagenette", "sketchy/photo", "cifar10", "fashion-mnist"]:
        pool += class_balanced(SHARED / s, 10**6)
    random.Random(0).shuffle(pool)
    for k, p in enumerate(pool[:n]):
        d = folder / p.parent.name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / f"{k}{p.suffix}")
    return pool


def write_section(results: Path, title: str, body: str) -> None:
    """Replace (or append) the section ``## title`` of RESULTS.md, keeping the others."""
    text = results.read_text() if results.exists() else "# Benchmark results\n\n" \
        "Every figure here was written by a script in `benchmarks/`; rerun it to check.\n"
    head = f"## {title}\n"
    parts = text.split("\n## ")
    kept = [parts[0]] + [p for p in parts[1:] if not p.startswith(title + "\n")]
    text = "\n## ".join(kept).rstrip() + "\n\n" + head + body.rstrip() + "\n"
    results.write_text(text)


def preamble(*mods: str) -> list[str]:
    """The lines every results section starts with: machine, software, commit, command."""
    import time

    lines = [f"Machine: {machine()}  "]
    if mods:
        lines.append(f"Software: {versions(*mods)}  ")
    lines += [f"Commit: {git_rev()}, date {time.strftime('%Y-%m-%d')}  ",
              f"Command: `{command()}`", ""]
    return lines


def scaled(im: Any, f: float) -> Any:
    """A PIL image resized by ``f`` (bicubic, at least 1 px a side): the planted copies'
    resize."""
    from PIL import Image

    w, h = im.size
    return im.resize((max(1, int(w * f)), max(1, int(h * f))), Image.BICUBIC)
