"""Files shipped inside the package: found through it, and a missing or damaged one is one
line naming it with the remedy for this kind of install (tests/test_packaging.py checks that
the built wheel holds them all)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from imgatlas import _package_data, api
from imgatlas._package_data import package_file, package_path
from imgatlas._templates import template_env
from imgatlas.backbones import _quantize
from imgatlas.cli import main
from imgatlas.errors import IncompleteInstall

REAL_ROOT = _package_data.package_root()
CALIBRATION = REAL_ROOT / "backbones" / "calibration"


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """An installed-looking package root (under site-packages) holding a copy of the
    calibration set, with the calibration caches emptied before and after."""
    root = tmp_path / "venv" / "lib" / "python3" / "site-packages" / "imgatlas"
    shutil.copytree(CALIBRATION, root / "backbones" / "calibration")
    monkeypatch.setattr(_package_data, "package_root", lambda: root)
    _quantize._calibration_manifest.cache_clear()
    _quantize.bundled_calibration.cache_clear()
    yield root
    _quantize._calibration_manifest.cache_clear()
    _quantize.bundled_calibration.cache_clear()


def test_shipped_files_are_found_through_the_package():
    assert package_file("names/imagenet_wordnet.json").is_file()
    assert package_file("sketch/sketch_shift.npz").is_file()
    assert package_path("serve/static").is_dir()


def test_the_calibration_manifest_lists_exactly_the_shipped_images():
    listed = {}
    for line in (CALIBRATION / "SHA256SUMS").read_text().splitlines():
        sha, name = line.split()
        listed[name] = sha
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in CALIBRATION.glob("*.jpg")}
    assert listed == on_disk and len(listed) == 120
    # the fingerprint that names every int8 graph and store is the one the images give
    assert _quantize.bundled_calibration() == _quantize.calibration_fingerprint(
        on_disk.values())


def test_a_missing_file_of_an_installed_package_names_it_and_the_reinstall(fake_package):
    with pytest.raises(IncompleteInstall) as e:
        package_file("names/imagenet_wordnet.json")
    msg = str(e.value)
    assert "names/imagenet_wordnet.json" in msg and str(fake_package) in msg
    assert "pip install --force-reinstall" in msg and "\n" not in msg
    assert "git checkout" not in msg  # not a remedy for an installed wheel


def test_a_missing_file_of_a_checkout_names_the_script_that_writes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(_package_data, "package_root", lambda: tmp_path / "src" / "imgatlas")
    with pytest.raises(IncompleteInstall) as e:
        package_file("names/imagenet_wordnet.json")
    msg = str(e.value)
    assert "scripts/make_imagenet_names.py" in msg and "git checkout" in msg
    assert "pip install" not in msg


def test_a_partial_calibration_set_is_refused_naming_the_file(fake_package):
    gone = sorted((fake_package / "backbones" / "calibration").glob("*.jpg"))[3]
    gone.unlink()
    with pytest.raises(IncompleteInstall) as e:
        _quantize.bundled_calibration()
    assert f"backbones/calibration/{gone.name}" in str(e.value)
    assert "--precision fp32" in str(e.value)


def test_a_damaged_calibration_image_is_refused_naming_it(fake_package):
    hurt = sorted((fake_package / "backbones" / "calibration").glob("*.jpg"))[0]
    hurt.write_bytes(hurt.read_bytes()[:-100])
    with pytest.raises(IncompleteInstall, match=f"calibration/{hurt.name} damaged"):
        _quantize.bundled_calibration()


def test_a_missing_manifest_is_refused(fake_package):
    (fake_package / "backbones" / "calibration" / "SHA256SUMS").unlink()
    with pytest.raises(IncompleteInstall, match="calibration/SHA256SUMS"):
        _quantize.bundled_calibration()


def test_run_without_its_calibration_is_one_line_and_keeps_the_scan(
        fake_package, image_dir, tmp_path, cache_dir, capsys, monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache_dir))
    (fake_package / "backbones" / "calibration" / "SHA256SUMS").unlink()
    ws = tmp_path / "ws"
    code = main(["run", str(image_dir), "-w", str(ws), "--backbone", "test_tiny",
                 "--precision", "int8", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "SHA256SUMS" in err
    assert api.status(ws)["images"] == 12  # what was done before the stop is kept


def test_a_template_missing_from_the_package_is_named(tmp_path, monkeypatch):
    root = tmp_path / "site-packages" / "imgatlas"
    (root / "report" / "templates").mkdir(parents=True)
    monkeypatch.setattr(_package_data, "package_root", lambda: root)
    env = template_env("imgatlas.report")
    with pytest.raises(IncompleteInstall, match="report/templates/index.html.j2"):
        env.get_template("index.html.j2")


def test_the_real_templates_still_load():
    assert template_env("imgatlas.serve").get_template("overview.html.j2") is not None
    assert Path(package_path("report/templates")).is_dir()
