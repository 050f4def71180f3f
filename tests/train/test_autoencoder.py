from __future__ import annotations

import numpy as np
import pytest

from imgatlas import api

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("preset,shape", [("fashion", (2, 1, 28, 28)),
                                          ("apparel", (1, 3, 240, 320)),
                                          ("default", (2, 3, 64, 64))])
def test_presets_reconstruct_their_input_shape(preset, shape):
    from imgatlas.train.autoencoder import build_autoencoder

    ae = build_autoencoder(preset).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        assert ae(x).shape == x.shape
        code = ae.encode(x)
    expected = {"fashion": 4 * 4 * 8, "apparel": 30 * 40 * 8, "default": 256}[preset]
    assert code.shape == (shape[0], expected)


def test_train_export_embed_cluster(image_dir, tmp_path, capsys):
    from imgatlas.cli import main

    ws = tmp_path / "ws"
    api.scan(image_dir, ws, labels_from_folders=True)
    res = api.train_autoencoder(ws, preset="fashion", epochs=3, batch_size=4, patience=2)
    hist = res["history"]
    assert 1 <= res["epochs_run"] <= 3 and len(hist) == res["epochs_run"]
    assert res["best_val_loss"] == min(h["val_loss"] for h in hist)
    assert res["dim"] == 128
    emb = api.embed(ws, backbone=res["onnx"])
    assert emb["embedded"] == 12 and emb["dim"] == 128
    _, X, _ = api.load_features(ws, features=emb["store"])
    # the exported encoder gives what the PyTorch model gives on the same pixels
    from imgatlas.decode import decode_rgb
    from imgatlas.train.autoencoder import build_autoencoder

    ae = build_autoencoder("fashion")
    ae.load_state_dict(torch.load(res["weights"], weights_only=True))
    ae.eval()
    first = sorted(image_dir.rglob("*.png"))
    with api.Workspace.open(ws) as w:
        path0 = w.images()[0].path
    px = decode_rgb(path0, (28, 28))
    x = torch.from_numpy(px).permute(2, 0, 1)[None].float().mean(1, keepdim=True) / 255
    with torch.no_grad():
        ref = ae.encode(x).numpy()[0]
    np.testing.assert_allclose(X[0], ref, atol=1e-4)
    assert first  # the generated images exist
    assert main(["cluster", "-w", str(ws), "--features", emb["store"], "--k", "3"]) == 0
    capsys.readouterr()
