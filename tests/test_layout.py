"""The layout's rules, kept true by a test: packages meet through their ``__init__``, nothing
imports the package root from inside, and the registries' defaults are the estimators'."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import imgatlas

SRC = Path(imgatlas.__file__).parent


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno


def _package(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


def test_no_module_imports_another_packages_private_modules():
    """``from imgatlas.X._y import ...`` only inside X (the package root's own ``_x``
    helpers are shared by all, as ``sklearn.utils._*`` are)."""
    found = []
    for path in SRC.rglob("*.py"):
        own = _package(path)
        for module, _names, line in _imports(path):
            parts = module.split(".")
            if parts[0] != "imgatlas" or len(parts) < 3:
                continue
            if parts[1] != own and any(p.startswith("_") for p in parts[2:]):
                found.append(f"{path.relative_to(SRC)}:{line}: {module}")
    assert not found, "\n".join(found)


def test_nothing_inside_imports_the_version_from_the_package_root():
    found = [f"{p.relative_to(SRC)}:{line}" for p in SRC.rglob("*.py")
             for module, names, line in _imports(p)
             if module == "imgatlas" and "__version__" in names and p != SRC / "__init__.py"]
    assert not found


@pytest.mark.parametrize("package", sorted(p.parent.name for p in SRC.glob("*/__init__.py")))
def test_every_exported_name_resolves(package):
    """A package's ``__all__`` (lazy names included) is what it offers: each one loads."""
    import importlib

    mod = importlib.import_module(f"imgatlas.{package}")
    for name in getattr(mod, "__all__", []):
        if name in {"train_workspace"} or package in {"train"}:
            continue
        try:
            getattr(mod, name)
        except ImportError as e:  # an optional extra (torch, fastapi) not installed
            pytest.skip(str(e))


def test_cluster_registry_defaults_are_the_estimators():
    from imgatlas.cluster import CLUSTERERS

    checked = 0
    for entry in CLUSTERERS:
        try:
            est = entry.factory(3 if entry.takes_k else None, 0)
        except ImportError:
            continue
        params = est.get_params()
        for p in entry.params:
            if p.name in params and p.default is not None:
                assert params[p.name] == p.default, (entry.name, p.name)
                checked += 1
    assert checked >= 8


def test_reduce_registry_defaults_are_the_factories():
    from imgatlas.reduce import REDUCERS

    checked = 0
    for entry in REDUCERS:
        sig = inspect.signature(entry.factory).parameters
        for p in entry.params:
            assert sig[p.name].default == p.default, (entry.name, p.name)
            checked += 1
    assert checked >= 5


def test_the_development_guide_names_every_package_and_module():
    text = (Path(__file__).parents[1] / "docs" / "development.md").read_text()
    layout = text[text.index("src/imgatlas/"):]
    names = [p.name + "/" for p in SRC.iterdir() if (p / "__init__.py").exists()]
    names += [p.name for p in SRC.glob("*.py")]
    missing = [n for n in names if n not in layout]
    assert not missing, missing
