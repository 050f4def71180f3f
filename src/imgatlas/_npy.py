"""NumPy arrays written so that a reader never sees half of one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_npy_atomic(path: Path, a: np.ndarray) -> None:
    """``np.save`` to a temporary file beside ``path``, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, a)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
