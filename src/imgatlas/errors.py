"""The one error tree of imgatlas.

Every failure a user can cause or meet is an :class:`ImgatlasError` whose message is one
sentence saying what happened and what to do. The CLI prints it on one line and exits
non-zero; anything else escaping is a bug.
"""

from __future__ import annotations

import threading
from typing import Any


class ImgatlasError(Exception):
    """Base class of every error imgatlas raises on purpose."""

    exit_code = 1


class ConfigError(ImgatlasError, ValueError):
    """A parameter or option has an invalid value."""

    exit_code = 2



class DecodeError(ImgatlasError):
    """An image file cannot be decoded."""


class WorkspaceError(ImgatlasError):
    """The workspace is missing, locked, damaged, too new, or cannot be written."""


class WorkspaceLocked(WorkspaceError):
    """Another process holds the workspace."""

    exit_code = 75  # EX_TEMPFAIL: retrying later will work


class UnknownBackbone(ImgatlasError, KeyError):
    """No backbone is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingWeights(ImgatlasError, FileNotFoundError):
    """A model's weight file is not where its configuration says."""


class IncompleteInstall(ImgatlasError, FileNotFoundError):
    """A file that ships inside the imgatlas package is not where the package is installed
    (a broken or hand-trimmed install, or a source checkout missing a generated file)."""


class MissingExtra(ImgatlasError):
    """An optional dependency (an extra of the package) is not installed."""


class UnsupportedModel(ImgatlasError):
    """A Hugging Face model whose architecture imgatlas cannot run as a backbone."""

    exit_code = 2


class ExportMismatch(ImgatlasError):
    """An exported ONNX graph does not give what the PyTorch model gives."""


class NoTextTower(ConfigError):
    """Text search on features whose backbone has no text encoder (and no ImageNet head)."""


def __getattr__(name: str) -> Any:
    # NotFittedError is made on first use: it subclasses scikit-learn's, and importing
    # scikit-learn is a second of every command's start (``--version``, ``status``, ``scan``)
    if name == "NotFittedError":
        with _MAKING:
            if name in globals():  # made by another thread meanwhile
                return globals()[name]
            return _make_not_fitted()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MAKING = threading.Lock()


def _make_not_fitted() -> type:
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted

    class NotFittedError(ImgatlasError, _SklearnNotFitted):
        """An estimator was used before ``fit`` (also scikit-learn's NotFittedError, so its
        tools and estimator checks recognise it)."""

    NotFittedError.__module__ = __name__
    globals()["NotFittedError"] = NotFittedError
    return NotFittedError


def as_user_error(e: BaseException) -> ImgatlasError | None:
    """The one place where errors raised *inside* the libraries on a user's bad value become
    imgatlas errors (the CLI and the web app both ask): scikit-learn's own parameter checks
    (``InvalidParameterError``: ``n_clusters`` must be >= 1 ...), NumPy's seed range and
    SQLite's integer range.
    None: not a user's error (a bug, which the faces report as one)."""
    import sys

    checks = sys.modules.get("sklearn.utils._param_validation")  # not loaded: not its error
    if checks is not None and isinstance(e, checks.InvalidParameterError):
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return ConfigError(f"Invalid value: {text}")
    if isinstance(e, ValueError) and "Seed must be between" in str(e):
        return ConfigError("--seed must be between 0 and 2**32 - 1.")
    if isinstance(e, OverflowError) and "SQLite INTEGER" in str(e):
        return ConfigError("An id is too large (ids are at most 2**63 - 1).")
    return None
