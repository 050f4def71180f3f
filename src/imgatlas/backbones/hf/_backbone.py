"""A Hugging Face model as an imgatlas :class:`~imgatlas.backbones.Backbone`, opened from its
export folder: ONNX Runtime only. The export is made on first use (``_export``, which
needs the ``foundation`` extra); after that neither torch nor transformers is imported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.backbones._quantize import DYNAMIC_INT8 as INT8_CALIBRATION
from imgatlas.backbones.hf._hub import ModelName, export_root, known_commit, parse_name
from imgatlas.errors import ConfigError, MissingWeights


def hf_backbone(name: str, cache_dir: str | os.PathLike[str] | None = None,
                say: Any = None) -> Backbone:
    """The backbone ``hf:ORG/NAME[@REVISION]``, exported first when imgatlas' model cache
    does not hold it for the commit the name stands for."""
    model = parse_name(name)
    folder = export_folder(model, cache_dir)
    if folder is None:
        from imgatlas.backbones.hf._export import export_model

        folder = export_model(model, cache_dir, say)
    return open_export(model, folder)


def export_folder(model: ModelName, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    """The export of ``model`` in the model cache, when there is one of this version."""
    from imgatlas.backbones.hf._export import EXPORT_VERSION

    commit = known_commit(model, cache_dir)
    if commit is None:
        return None
    folder = export_root(model, cache_dir) / commit
    spec = _read_spec(folder)
    if spec is None or spec.get("export_version") != EXPORT_VERSION:
        return None
    return folder


def open_export(model: ModelName, folder: Path) -> Backbone:
    spec = _read_spec(folder)
    if spec is None:
        raise MissingWeights(f"The export {folder / 'spec.json'} of {model.display} is missing "
                             "or damaged; delete the folder and run again.")
    d = spec["decode"]
    text = spec.get("text")
    identity = f"hf-{spec['commit'][:12]}-v{spec['export_version']}"
    # named as the user names it; a commit pins the export, not the name (the identity
    # holds the commit), so a store reopened at its commit keeps its key
    label = model.display if not _is_commit(model.revision) else f"hf:{model.repo}"
    cfg = BackboneCfg(
        name=label, input_size=tuple(d["input_size"]),  # type: ignore[arg-type]
        mean=tuple(d["mean"]), std=tuple(d["std"]),  # type: ignore[arg-type]
        dim=int(spec["dim"]), interpolation=d["interpolation"], resize=d["resize"],
        input_format="uint8_nhwc", feature_output="features",
        weights=f"hf:{spec['repo']}@{spec['commit']}",
        extra={"family": spec["family"], "repo": spec["repo"], "commit": spec["commit"],
               "text_tower": text is not None, "identity": identity},
    )
    for f in [spec["image"]["fp32"]] + ([text["graph"], text["tokenizer"]] if text else []):
        if not (folder / f).is_file():
            raise MissingWeights(f"The export of {model.display} lacks {folder / f}; delete "
                                 f"{folder} and run again.")
    return HFBackbone(cfg, folder, spec, identity)


class HFBackbone(Backbone):
    """A Hugging Face export: its fp32 image graph, its own int8 graph (where int8 agreed
    with fp32 at the export) and, for CLIP and SigLIP, its text tower."""

    def __init__(self, cfg: BackboneCfg, folder: Path, spec: dict[str, Any],
                 identity: str) -> None:
        super().__init__(cfg, folder / spec["image"]["fp32"], identity=identity)
        self.folder, self.spec = folder, spec
        self.default_precision = "int8" if spec["image"].get("int8") else "fp32"
        self.quantized = self._int8

    def _int8(self) -> Backbone:
        from imgatlas.backbones._quantize import int8_backbone

        name = self.spec["image"].get("int8")
        if not name:
            a = self.spec["image"]["int8_agreement"]
            raise ConfigError(
                f"{self.name} has no int8 graph: its int8 features agreed with fp32 only at "
                f"cosine {a['mean']:.3f} (lowest {a['min']:.3f}); use --precision fp32.")
        return int8_backbone(self, self.folder / name, INT8_CALIBRATION)

    def text_tower(self) -> Any:
        text = self.spec.get("text")
        if text is None:
            return None
        from imgatlas.backbones.hf._text import TextTower

        return TextTower(self.folder, text)


def reopen_name(record: dict[str, Any]) -> str:
    """The name that reopens a recorded backbone: a Hugging Face export at the commit that
    made the record (``weights``: ``hf:ORG/NAME@COMMIT``), else its registered name."""
    weights = str(record.get("weights") or "")
    return weights if weights.startswith("hf:") else record["name"]


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def _read_spec(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "spec.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None


def fetch(name: str, cache_dir: str | os.PathLike[str] | None = None,
          say: Any = None) -> dict[str, Any]:
    """Download (through transformers, on a connected machine) and export ``name``; say
    which folder to copy to an offline machine."""
    from imgatlas.backbones.hf._catalog import CATALOG

    if name in CATALOG:
        name = "hf:" + CATALOG[name].repo
    model = parse_name(name)
    folder = export_folder(model, cache_dir)
    made = folder is None
    if folder is None:
        from imgatlas.backbones.hf._export import export_model

        folder = export_model(model, cache_dir, say)
    spec = _read_spec(folder) or {}
    root = export_root(model, cache_dir)
    return {"backbone": model.display, "family": spec.get("family"), "dim": spec.get("dim"),
            "commit": spec.get("commit"), "exported": made, "folder": str(root),
            "int8": bool(spec.get("image", {}).get("int8")),
            "int8_agreement": spec.get("image", {}).get("int8_agreement"),
            "text_tower": spec.get("text") is not None,
            "copy_to": "the same path under IMGATLAS_CACHE (default ~/.cache/imgatlas) on the "
                       "offline machine"}
