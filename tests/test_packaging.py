"""The wheel and the sdist carry every file of the package (built here as pip builds them:
the sdist, then the wheel from it), and the comparison fails when one is left out.
scripts/check_install.py (run by ``make test`` after this suite) installs the wheel into a
fresh venv and runs the default job from it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _check_install():
    spec = importlib.util.spec_from_file_location("check_install",
                                                  ROOT / "scripts" / "check_install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ci = _check_install()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing to compare the built files with")
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    # no isolation: the backend installed with the dev extra, so no registry is needed here
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_wheel_built_from_the_sdist_holds_every_package_file(built):
    sdist, wheel = built
    tree = ci.package_files_in_tree()
    assert {"backbones/calibration/SHA256SUMS", "names/imagenet_wordnet.json",
            "sketch/sketch_shift.npz", "serve/static/app.css",
            "report/templates/index.html.j2", "py.typed", "__main__.py"} <= tree
    assert sum(p.endswith(".jpg") for p in tree) == 120
    assert ci.compare(tree, ci.package_files_in_wheel(wheel), wheel.name) == []
    assert ci.compare(tree, ci.package_files_in_sdist(sdist), sdist.name) == []


def test_the_wheel_holds_no_byte_code_and_names_its_entry_point_and_licence(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "imgatlas = imgatlas.cli:main" in z.read(entry).decode()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.endswith("licenses/LICENSE") for n in names)


@pytest.mark.parametrize("drop", ["backbones/calibration/SHA256SUMS",
                                  "serve/templates/search.html.j2", "report/static/report.js"])
def test_a_wheel_without_one_data_file_fails_the_check(built, tmp_path, drop):
    _, wheel = built
    doctored = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(doctored, "w") as dst:
        for item in src.infolist():
            if item.filename != f"imgatlas/{drop}":
                dst.writestr(item, src.read(item))
    problems = ci.compare(ci.package_files_in_tree(), ci.package_files_in_wheel(doctored),
                          doctored.name)
    assert problems == [f"{doctored.name} lacks src/imgatlas/{drop}"]
    # and the install check itself stops there, with that line
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_install.py"),
                          "--wheel", str(doctored)], capture_output=True, text=True)
    assert res.returncode == 1 and f"lacks src/imgatlas/{drop}" in res.stderr


def test_an_extra_file_in_the_wheel_is_reported_too():
    assert ci.compare({"a.py"}, {"a.py", "stray.bin"}, "w.whl") == [
        "w.whl holds imgatlas/stray.bin, which the source tree does not"]


def test_python_dash_m_is_the_imgatlas_command(capsys):
    from imgatlas.cli import main

    for argv, code in ((["--version"], 0), (["no-such-command"], 2)):
        res = subprocess.run([sys.executable, "-m", "imgatlas", *argv], capture_output=True,
                             text=True, cwd=ROOT.parent)
        assert res.returncode == code == main(argv)
        out, err = capsys.readouterr()
        assert res.stdout == out and res.stderr.strip() == err.strip()


def test_pip_wheel_of_the_tree_holds_every_package_file(built, tmp_path):
    """``pip wheel .`` builds from the tree itself, not from the sdist: the same files."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    assert ci.compare(ci.package_files_in_tree(), ci.package_files_in_wheel(wheel),
                      wheel.name) == []
