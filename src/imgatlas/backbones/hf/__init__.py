"""Foundation models from the Hugging Face hub (DINOv2, CLIP, SigLIP) as backbones, run like
the default: exported to ONNX once (``imgatlas[foundation]``: transformers and PyTorch),
then ONNX Runtime only, int8 where it agrees with fp32, with a text tower for CLIP and
SigLIP. Named ``hf:ORG/NAME[@REVISION]`` or by a short name (:data:`CATALOG`)."""

from __future__ import annotations

from pathlib import Path

from imgatlas.backbones._base import Backbone
from imgatlas.backbones._registry import register_backbone
from imgatlas.backbones.hf._backbone import (
    INT8_CALIBRATION,
    HFBackbone,
    export_folder,
    fetch,
    hf_backbone,
    open_export,
    reopen_name,
)
from imgatlas.backbones.hf._catalog import CATALOG, FAMILIES, TEXT_FAMILIES, Entry
from imgatlas.backbones.hf._hub import (
    ModelName,
    export_root,
    hf_hub_cache,
    is_hf_name,
    parse_name,
)


def _register(entry: Entry) -> None:
    def factory(cache_dir: Path | None = None) -> Backbone:
        return hf_backbone(f"hf:{entry.repo}", cache_dir=cache_dir)

    factory.__doc__ = f"hf:{entry.repo}: {entry.good_for}."
    register_backbone(factory, name=entry.name, info={
        "dim": entry.dim, "input_size": [entry.side, entry.side],
        "weights": f"hf:{entry.repo} (Hugging Face hub, {entry.licence}; exported on first "
                   "use with the foundation extra)",
        "licence": entry.licence, "params_m": entry.params_m, "family": entry.family,
        "text": entry.family in TEXT_FAMILIES, "good_for": entry.good_for})


for _entry in CATALOG.values():
    _register(_entry)

__all__ = ["CATALOG", "FAMILIES", "INT8_CALIBRATION", "TEXT_FAMILIES", "HFBackbone",
           "ModelName", "export_folder", "export_root", "fetch", "hf_backbone",
           "hf_hub_cache", "is_hf_name", "open_export", "parse_name", "reopen_name"]
