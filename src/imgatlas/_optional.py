"""Optional dependencies: imported where used, or a one-line error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from imgatlas.errors import MissingExtra

# extra -> how to install it (torch first as the CPU wheel: a bare `torch` pulls CUDA)
INSTALL = {
    "train": "pip install torch==2.13.0 'imgatlas[train]' (the first command takes the CPU "
             "wheel)",
    "kmedoids": "pip install 'imgatlas[kmedoids]' (GPL-3.0)",
    "serve": "pip install 'imgatlas[serve]'",
    "ray": "pip install 'imgatlas[ray]'",
    "lite": "pip install 'imgatlas[lite]'",
    "foundation": "pip install torch==2.13.0 'imgatlas[foundation]' (the first command takes "
                  "the CPU wheel)",
}


def require(module: str, extra: str, what: str) -> ModuleType:
    """``import module``, or a :class:`MissingExtra` saying ``what`` needs the ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what[0].upper() + what[1:]} needs {module.split('.')[0]}; "
                           f"install the '{extra}' extra: {INSTALL[extra]}.") from None


def import_torch(what: str = "this command") -> ModuleType:
    """PyTorch (training only), or a one-line error naming the ``train`` extra."""
    return require("torch", "train", what)
