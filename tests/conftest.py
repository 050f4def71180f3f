from __future__ import annotations

import os
import tempfile
from pathlib import Path

# The tests never reach the Hugging Face hub, and never read the user's cache: set before
# anything imports huggingface_hub (it reads both once, at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="imgatlas-test-hf-")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HUGGINGFACE_HUB_CACHE", None)

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


CHROMIUM = os.environ.get("IMGATLAS_CHROMIUM", "/usr/bin/chromium")


def watched_page(playwright, problems: list[str]):
    """``(browser, page)`` in the system's Chromium, every console error or warning, page
    error and dialog (an ``alert()`` is what injected script would show) added to
    ``problems``."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    return browser, page


def shared_data(*parts: str) -> Path:
    """A real dev-set folder from ../shared/data, or skip the test cleanly."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data {p} is not present")
    return p


def pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth, seeded RGB pattern: compresses well and survives JPEG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f = rng.uniform(0.02, 0.2, 3)
    p = rng.uniform(0, 6.28, 3)
    a = np.stack([127 + 120 * np.sin(f[c] * xx + f[(c + 1) % 3] * yy + p[c]) for c in range(3)],
                 -1)
    return a.astype(np.uint8)


def write_image(path: Path, w: int = 48, h: int = 40, seed: int = 0, fmt: str | None = None,
                mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pattern(w, h, seed))
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path


def colour_groups(root: Path, colours: dict[str, tuple[int, int, int]], per_group: int,
                  shape: tuple[int, int] = (32, 32), ext: str = "png", **save: object) -> Path:
    """One folder of noisy single-colour images per colour: obvious, labelled clusters."""
    rng = np.random.default_rng(0)
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True)
        for j in range(per_group):
            a = np.clip(np.array(rgb) + rng.normal(0, 12, (*shape, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{j}.{ext}", **save)
    return root


def set_schema_version(ws_path: Path, version: int) -> None:
    """Pretend a workspace was written by another imgatlas (the catalog's connection is
    private to the workspace, so tests that damage it go through sqlite3)."""
    import sqlite3

    con = sqlite3.connect(Path(ws_path) / "catalog.sqlite")
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
    con.commit()
    con.close()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model cache for the whole session: the default backbone is exported once."""
    env = os.environ.get("IMGATLAS_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("model-cache")


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    """Three labelled folders of small generated images, 12 in all."""
    root = tmp_path / "images"
    for k, cls in enumerate(["cats", "dogs", "birds"]):
        for j in range(4):
            write_image(root / cls / f"{cls}_{j}.png", 40 + j, 32, seed=10 * k + j)
    return root


# -- the web app's workspace ------------------------------------------------------------------
SERVE_EVIL = '<img src=x onerror=alert(1)>'
SERVE_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40),
                 'blue"><svg onload=alert(2)>': (30, 40, 220)}


@pytest.fixture(scope="session")
def served_ws(tmp_path_factory, cache_dir):
    """Colour groups (one with markup in its name, one file with a non-UTF-8 name, one
    broken file), embedded with the tiny test backbone, clustered, a head model trained."""
    import shutil


    pytest.importorskip("fastapi")
    root = colour_groups(tmp_path_factory.mktemp("serve") / "img", SERVE_COLOURS, 12,
                         shape=(40, 48), ext="jpg", quality=90)
    shutil.copy(root / "red" / "0.jpg", root / "red" / f"{SERVE_EVIL}.jpg")
    shutil.copy(root / "red" / "1.jpg", os.path.join(os.fsencode(root / "red"),
                                                     b"caf\xe9.jpg"))
    (root / "green" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    return clustered_and_trained(root, cache_dir), root


def clustered_and_trained(root: Path, cache_dir: Path) -> Path:
    """A workspace beside ``root``: its labelled folders scanned, embedded with the tiny test
    backbone, clustered (k = 3) and a head model ``m`` trained."""
    from imgatlas import api

    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.cluster(ws, k=3)
    api.train(ws, name="m", cache_dir=cache_dir)
    return ws


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster of 2 CPUs for the whole session (each start costs seconds).
    CI installs the ``ray`` extra, so there these tests run; elsewhere they skip."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'imgatlas[ray]')")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=False)
    yield ray
    ray.shutdown()


def scene(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    """A seeded photo-like RGB picture: shapes with sharp edges and corners on a shaded
    background, light noise (what keypoints, hashes and focus measures work on)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, 3)
    a = np.stack([base[c] + 40 * np.sin(xx / rng.uniform(30, 90) + c) * np.cos(
        yy / rng.uniform(30, 90)) for c in range(3)], -1)
    a = np.ascontiguousarray(a.clip(0, 255).astype(np.uint8))
    for _ in range(14):
        colour = tuple(int(x) for x in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(a, (x, y), (x + int(rng.integers(3, max(4, w // 3))),
                                      y + int(rng.integers(3, max(4, h // 3)))), colour, -1)
        else:
            cv2.ellipse(a, (x, y), (int(rng.integers(2, max(3, w // 5))),
                                    int(rng.integers(2, max(3, h // 5)))),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
    for _ in range(4):
        colour = tuple(int(x) for x in rng.integers(0, 256, 3))
        cv2.line(a, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                 (int(rng.integers(0, w)), int(rng.integers(0, h))), colour, 2)
    return (a + rng.normal(0, 3, a.shape)).clip(0, 255).astype(np.uint8)


def write_scene(path: Path, w: int = 320, h: int = 240, seed: int = 0, **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene(w, h, seed)).save(path, **save)
    return path


# Tiny randomly initialised foundation models under the real repo names (imgatlas'
# short names point there), written once per session into the test HF cache.
HF_MODELS = {"dinov2": "facebook/dinov2-small", "clip": "openai/clip-vit-base-patch32",
             "siglip": "google/siglip-base-patch16-224"}


@pytest.fixture(scope="session")
def hf_hub() -> Path:
    """The test session's Hugging Face hub cache holding :data:`HF_MODELS` (tiny, random).
    Needs the ``foundation`` extra (transformers, PyTorch), which CI installs."""
    pytest.importorskip("transformers", reason="the foundation extra is not installed")
    pytest.importorskip("torch", reason="the foundation extra is not installed")
    from imgatlas.backbones.hf._fake import write_fake_model

    hub = Path(os.environ["HF_HOME"]) / "hub"
    for family, repo in HF_MODELS.items():
        write_fake_model(hub, repo, family)
    return hub
