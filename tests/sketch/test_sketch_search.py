"""index --sketch, search --sketch, evaluate-sketch and train-sketch through the API and the
CLI, on generated shapes and, where the dev set is present, real Sketchy sketches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import shared_data
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError, DecodeError, WorkspaceError

SHAPES = ("circle", "square", "triangle")


def _draw(shape: str, rng: np.random.Generator, size: int, photo: bool) -> Image.Image:
    """A photo-like (filled, coloured, textured background) or sketch-like (outline) shape."""
    bg = tuple(int(v) for v in rng.integers(150, 255, 3)) if photo else (255, 255, 255)
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    c = size / 2 + rng.normal(0, size * 0.04, 2)
    r = size * rng.uniform(0.25, 0.35)
    fill = tuple(int(v) for v in rng.integers(0, 120, 3)) if photo else None
    outline = None if photo else (0, 0, 0)
    box = (c[0] - r, c[1] - r, c[0] + r, c[1] + r)
    if shape == "circle":
        d.ellipse(box, fill=fill, outline=outline, width=3)
    elif shape == "square":
        d.rectangle(box, fill=fill, outline=outline, width=3)
    else:
        pts = [(c[0], c[1] - r), (c[0] + r, c[1] + r), (c[0] - r, c[1] + r)]
        d.polygon(pts, fill=fill, outline=outline, width=3)
    return img


def pairs_workspace(root: Path, photos: int, sketches: int, seed: int, cache_dir: Path
                    ) -> Path:
    """Shape photos and sketches in the Sketchy layout under ``root/pairs`` (sketch
    ``NAME-K.png`` draws photo ``NAME.jpg``); the photos scanned and embedded into
    ``root/ws``."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        for kind, n in (("photo", photos), ("sketch", sketches)):
            d = root / "pairs" / kind / shape
            d.mkdir(parents=True)
            for j in range(n):
                name = f"{shape}{j}.jpg" if kind == "photo" else f"{shape}{j % photos}-{j}.png"
                _draw(shape, rng, 160, kind == "photo").save(d / name)
    ws = root / "ws"
    api.scan(root / "pairs" / "photo", ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    return ws


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("shapes")
    return root, pairs_workspace(root, 12, 4, 0, cache_dir)


def test_sketch_index_search_and_evaluation(shapes, cache_dir, capsys):
    root, ws = shapes
    with pytest.raises(WorkspaceError, match="no sketch index"):
        api.search_sketch(ws, [root / "pairs" / "sketch" / "circle" / "circle0-0.png"],
                          cache_dir=cache_dir)
    res = api.build_index(ws, sketch=True, cache_dir=cache_dir)
    assert res["domain"] == "sketch" and res["n"] == 36 and res["embedded"] == 36
    assert res["dim"] == 1280  # the photos, in the fitted map's space
    assert res["map"]["n_photos"] == 36 and res["map"]["sketch_shift"] == "shipped"
    assert (Path(res["path"]) / "arrays.npz").is_file()  # the map is kept with the index
    again = api.build_index(ws, sketch=True, cache_dir=cache_dir)
    assert again["embedded"] == 0  # line maps are embedded once
    runs = api.runs(ws, kind="index")
    assert runs[-1]["params"]["map"]["n_photos"] == 36  # the fit is recorded in the run
    hits = api.search_sketch(ws, [root / "pairs" / "sketch" / "circle" / "circle0-0.png"],
                             k=5, cache_dir=cache_dir)[0]["results"]
    assert len(hits) == 5 and {"id", "score", "path", "label"} <= set(hits[0])
    ev = api.evaluate_sketch(ws, root / "pairs" / "sketch", cache_dir=cache_dir)
    for key in ("map", "mrr", "p_at_10", "pr_curve", "n_queries", "ms_per_query_p50",
                "bytes_per_image"):
        assert key in ev
    assert ev["n_queries"] == 12 and ev["map"] > 0.45  # chance is about 0.36
    assert ev["expand"] == 5 and ev["source_photos_excluded"] == 0
    # each sketch k-j.png draws photo k.jpg: left out, it is neither ranked nor relevant
    alone = api.evaluate_sketch(ws, root / "pairs" / "sketch", cache_dir=cache_dir,
                                exclude_source=True, expand=False)
    assert alone["source_photos_excluded"] == 12 and alone["expand"] == 0
    assert alone["map"] > 0.4
    assert main(["evaluate-sketch", "-w", str(ws), str(root / "pairs" / "sketch"),
                 "--cache-dir", str(cache_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_queries"] == 12
    # a canvas PNG (transparent background) as bytes, the web app's path
    from io import BytesIO

    canvas = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).ellipse((40, 40, 160, 160), outline=(0, 0, 0, 255), width=4)
    buf = BytesIO()
    canvas.save(buf, "PNG")
    out = api.search_sketch(ws, [buf.getvalue()], k=3, cache_dir=cache_dir)
    assert out[0]["query"] == "drawing" and len(out[0]["results"]) == 3


def test_sketch_errors_are_one_line(shapes, cache_dir, tmp_path, capsys):
    root, ws = shapes
    api.build_index(ws, sketch=True, cache_dir=cache_dir)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (100, 100), "white").save(blank)
    (tmp_path / "text.png").write_text("hello")
    for f, needle in ((blank, "blank"), (tmp_path / "text.png", "not an image")):
        code = main(["search", "-w", str(ws), "--sketch", str(f), "--cache-dir",
                     str(cache_dir)])
        err = capsys.readouterr().err
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
    huge = tmp_path / "huge.png"
    Image.new("1", (20_000, 20_000), 1).save(huge)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        api.search_sketch(ws, [huge], cache_dir=cache_dir)
    with pytest.raises(ConfigError, match="class folders"):
        api.evaluate_sketch(ws, tmp_path / "nowhere", cache_dir=cache_dir)
    assert main(["search", "-w", str(ws), "x.jpg", "--sketch", str(blank)]) == 2


def test_train_sketch_adapter_and_use_it(shapes, cache_dir, capsys):
    pytest.importorskip("torch")
    root, ws = shapes
    res = api.train_sketch(ws, root / "pairs", name="adapter", cache_dir=cache_dir)
    folder = Path(res["model"])
    assert (folder / "adapter.npz").is_file() and res["classes"] == sorted(SHAPES)
    meta = json.loads((folder / "model.json").read_text())
    assert meta["kind"] == "sketch-adapter" and meta["backbone"] == "efficientnet_lite0"
    api.build_index(ws, sketch=True, cache_dir=cache_dir)  # without the adapter ...
    with pytest.raises(ConfigError, match="built with no adapter"):
        api.search_sketch(ws, [root / "pairs" / "sketch" / "square" / "square0-0.png"],
                          adapter=folder, cache_dir=cache_dir)
    assert main(["index", "-w", str(ws), "--sketch", "--adapter", str(folder),
                 "--cache-dir", str(cache_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapter"] == meta["identity"]
    hits = api.search_sketch(ws, [root / "pairs" / "sketch" / "square" / "square0-0.png"],
                             adapter=folder, cache_dir=cache_dir)
    assert hits[0]["results"]
    with pytest.raises(ConfigError, match="built with"):  # and the other way round
        api.search_sketch(ws, [root / "pairs" / "sketch" / "square" / "square0-0.png"],
                          cache_dir=cache_dir)
    assert api.build_index(ws, sketch=True, adapter=folder, cache_dir=cache_dir)["dim"] \
        == 2 * 1280  # the map's photo space beside the adapter's
    with pytest.raises(ConfigError, match="not a sketch adapter"):
        api.build_index(ws, sketch=True, adapter=root, cache_dir=cache_dir)


def test_an_index_without_its_map_asks_to_be_rebuilt(shapes, cache_dir):
    root, ws = shapes
    res = api.build_index(ws, sketch=True, cache_dir=cache_dir)
    (Path(res["path"]) / "arrays.npz").unlink()  # as an index built before the map existed
    with pytest.raises(ConfigError, match="older imgatlas"):
        api.search_sketch(ws, [root / "pairs" / "sketch" / "circle" / "circle0-0.png"],
                          cache_dir=cache_dir)
    api.build_index(ws, sketch=True, cache_dir=cache_dir)
    assert api.search_sketch(ws, [root / "pairs" / "sketch" / "circle" / "circle0-0.png"],
                             cache_dir=cache_dir)[0]["results"]


def test_real_dev_sketches_find_their_class(tmp_path, cache_dir):
    root = shared_data("sketchy")
    classes = ["airplane", "apple", "bicycle"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for c in classes:
        os.symlink(root / "photo" / c, photos / c)
    ws = tmp_path / "ws"
    api.scan(photos, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    api.build_index(ws, sketch=True, cache_dir=cache_dir)
    sketches = tmp_path / "sketches"
    sketches.mkdir()
    for c in classes:
        (sketches / c).mkdir()
        for f in sorted((root / "sketch" / c).iterdir())[:5]:
            os.symlink(f, sketches / c / f.name)
    ev = api.evaluate_sketch(ws, sketches, cache_dir=cache_dir)
    assert ev["n_queries"] == 15 and ev["map"] > 0.5  # chance with 3 classes is about 0.35


def test_the_web_app_draws_through_the_same_fitted_index(shapes, cache_dir):
    pytest.importorskip("fastapi")
    from io import BytesIO

    from fastapi.testclient import TestClient

    from imgatlas.serve import create_app

    root, ws = shapes
    api.build_index(ws, sketch=True, cache_dir=cache_dir)
    drawing = (root / "pairs" / "sketch" / "square" / "square0-0.png").read_bytes()
    client = TestClient(create_app(ws, cache_dir=cache_dir))
    r = client.post("/api/search/sketch", files={"image": ("d.png", drawing, "image/png")},
                    data={"k": "5"})
    assert r.status_code == 200 and r.json()["index"] == "sketch index"
    web = [h["id"] for h in r.json()["results"]]
    cli = [h["id"] for h in api.search_sketch(ws, [BytesIO(drawing).getvalue()], k=5,
                                              cache_dir=cache_dir)[0]["results"]]
    assert web == cli
