"""Where imgatlas keeps files outside a workspace: the model cache."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Exported and built models: ``$IMGATLAS_CACHE``, else ``$XDG_CACHE_HOME/imgatlas``,
    else ``~/.cache/imgatlas``. The one place this is decided."""
    env = os.environ.get("IMGATLAS_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "imgatlas"


def cache_dir_or_default(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir) if cache_dir else default_cache_dir()
