"""The OpenBLAS kernel imgatlas picks for faiss before faiss loads (imgatlas/_blas.py)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from imgatlas import _blas

AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma"}


@pytest.mark.parametrize(("flags", "kernel"), [
    (AVX512, "SkylakeX"),
    ({"avx2", "fma", "sse4_2"}, "Haswell"),
    ({"avx512f", "avx2", "fma"}, "Haswell"),  # AVX-512 foundation alone: not SkylakeX's set
    ({"sse4_2", "avx"}, None),
    (set(), None),
])
def test_kernel_follows_the_cpu_flags(flags, kernel):
    assert _blas.kernel_for(flags) == kernel


def test_a_kernel_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setattr(_blas, "cpu_flags", lambda: AVX512)
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert _blas.choose_kernel(env) == "Haswell"
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.machine() != "x86_64",
                    reason="the kernel is chosen on x86-64 Linux only")
def test_an_unset_kernel_is_set_from_the_flags(monkeypatch):
    monkeypatch.setattr(_blas, "cpu_flags", lambda: {"avx2", "fma"})
    env: dict[str, str] = {}
    assert _blas.choose_kernel(env) == "Haswell"
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}
    monkeypatch.setattr(_blas, "cpu_flags", lambda: {"sse2"})
    env = {}
    assert _blas.choose_kernel(env) is None and env == {}


@pytest.mark.skipif(_blas.kernel_for(_blas.cpu_flags()) is None
                    or platform.machine() != "x86_64",
                    reason="no AVX2 on this CPU: OpenBLAS' own choice stands")
def test_faiss_runs_the_chosen_kernel_once_imgatlas_is_imported():
    pytest.importorskip("threadpoolctl")
    code = ("import imgatlas, faiss, threadpoolctl, json; print(json.dumps(sorted("
            "{i.get('architecture') for i in threadpoolctl.threadpool_info() "
            "if i['internal_api'] == 'openblas' and 'faiss' in i['filepath']})))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    kernels = json.loads(out.strip().splitlines()[-1])
    if not kernels:
        pytest.skip("this faiss build links no OpenBLAS of its own")
    assert kernels == [_blas.kernel_for(_blas.cpu_flags())]
