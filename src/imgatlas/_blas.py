"""The BLAS kernel faiss' OpenBLAS runs, chosen from the CPU's flags before it loads.

The faiss-cpu wheel bundles OpenBLAS 0.3.15, which does not know CPUs newer than it (Sapphire
and Emerald Rapids among them) and falls back to its generic "Prescott" kernel, without AVX
(OpenBLAS issues #3453 and #4267, fixed from 0.3.19 and 0.3.25). On this project's machines
that made every faiss matrix product ~5x slower than numpy's: assigning 65,536 vectors of
1,280 dimensions to 4,000 centroids took 23.1 s against 3.2 s with the AVX-512 kernel
(benchmarks/bench_blas.py). OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when it loads, so it is
set here, at import, where the user has not set it; numpy's own OpenBLAS already picks the
same kernel on these CPUs.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping

ENV = "OPENBLAS_CORETYPE"


def kernel_for(flags: set[str]) -> str | None:
    """The newest OpenBLAS 0.3.15 x86-64 kernel these CPU flags can run; None: leave
    OpenBLAS' own choice."""
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def cpu_flags() -> set[str]:
    """The first CPU's flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def choose_kernel(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` in ``environ`` where it is unset, on x86-64 Linux; returns
    the kernel in force (None: OpenBLAS detects it)."""
    if environ.get(ENV):
        return environ[ENV]
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    kernel = kernel_for(cpu_flags())
    if kernel is not None:
        environ[ENV] = kernel
    return kernel


choose_kernel()  # at import: imgatlas/__init__.py imports this module before anything else
