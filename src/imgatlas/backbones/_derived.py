"""Backbones whose weights live in a workspace: a base network tuned on that collection (the
sketch index's distilled line branch), kept in ``W/backbones/`` beside the features it made,
named ``<base>-<kind>-<fingerprint>.onnx``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from imgatlas.backbones._base import Backbone
from imgatlas.errors import ConfigError

MODEL_DIR = "backbones"


def derived_path(ws_path: Path, base: str, kind: str, fingerprint: str) -> Path:
    return ws_path / MODEL_DIR / f"{base}-{kind}-{fingerprint}.onnx"


def reopen_derived(ws_path: Path, base: Backbone, kind: str, fingerprint: str) -> Backbone:
    """``base`` tuned into ``kind`` on the workspace's collection, or a one-line error."""
    path = derived_path(ws_path, base.name, kind, fingerprint)
    if not path.is_file():
        raise ConfigError(f"The model {path} that made these features is missing; build it "
                          "again (for the sketch index: 'imgatlas index --sketch --adapt').")
    bb = Backbone(replace(base.cfg, name=f"{base.name}-{kind}"), path,
                  identity=f"{base.identity()}-{kind}-{fingerprint}")
    bb.derived = {"kind": kind, "fingerprint": fingerprint, "base": base.name}
    return bb
