"""Files that ship inside the package (calibration images, the taxonomy, the sketch offset,
templates, static files): found through the package, never through the working directory or
the source tree, and a missing one is one line that names it and says how to get it back."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from imgatlas._version import __version__
from imgatlas.errors import IncompleteInstall

# Data folders written by a script of the repository (a source checkout can regenerate them).
GENERATED_BY = {
    "names/vocabulary.json": "scripts/make_vocabulary.py",  # before its folder's script
    "backbones/calibration": "scripts/make_int8_calibration.py",
    "names": "scripts/make_imagenet_names.py",
    "sketch": "scripts/make_sketch_shift.py",
}


def package_root() -> Path:
    return Path(str(resources.files("imgatlas")))


def package_path(relative: str) -> Path:
    """Where ``relative`` (``"backbones/calibration"``, ``"names/x.json"``) lies inside the
    installed package, whether or not it exists."""
    return package_root().joinpath(*relative.split("/"))


def package_file(relative: str, *, meanwhile: str = "") -> Path:
    """The shipped file ``relative``; :class:`IncompleteInstall` when it is missing.
    ``meanwhile`` adds what works without it (``"or use --precision fp32"``)."""
    path = package_path(relative)
    if not path.is_file():
        raise incomplete_install([relative], meanwhile=meanwhile)
    return path


def is_source_checkout() -> bool:
    """True for an editable install or ``PYTHONPATH=src`` (the package is not under a
    site-packages folder), where the remedy is the checkout's, not a reinstall."""
    return not any(part in ("site-packages", "dist-packages") for part in package_root().parts)


def incomplete_install(missing: list[str], *, meanwhile: str = "",
                       problem: str = "missing") -> IncompleteInstall:
    """The error for shipped files that are not there: which, where, and the remedy that
    works for this kind of install."""
    first = missing[0]
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    where = package_path(first)
    if is_source_checkout():
        folder = next((f for f in GENERATED_BY if first.startswith(f + "/")
                       or first == f), None)
        how = (f"restore it in the source tree (git checkout -- src/imgatlas/{first}"
               + (f", or run {GENERATED_BY[folder]}" if folder else "") + ")")
    else:
        how = ("the installed package is incomplete: reinstall imgatlas from a complete wheel "
               f"or sdist (pip install --force-reinstall --no-deps imgatlas=={__version__}, "
               "or the wheel that 'pip wheel .' builds from a source checkout)")
    tail = f", {meanwhile}" if meanwhile else ""
    return IncompleteInstall(f"imgatlas {__version__} has its file {first}{more} {problem} "
                             f"(looked at {where}); {how}{tail}.")
