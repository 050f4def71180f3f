"""Backbone registry in the style of timm: ``@register_backbone`` on a factory function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgatlas.backbones._base import Backbone
from imgatlas.errors import UnknownBackbone

_factories: dict[str, Callable[..., Backbone]] = {}


def register_backbone(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
    """Register ``fn`` under its own name; it returns a :class:`Backbone`."""
    _factories[fn.__name__] = fn
    return fn


def list_backbones() -> list[str]:
    return sorted(_factories)


def create_backbone(name: str, *, cache_dir: str | Path | None = None, **kwargs: Any) -> Backbone:
    """Return the backbone called ``name``, or one built from a local ``.onnx`` file.

    ``name`` is a registered name (see :func:`list_backbones`) or a path to an ONNX model with
    a preprocessing spec beside it (``model.json``, see :mod:`imgatlas.backbones.onnx_file`).
    Nothing is loaded until the backbone is used.
    """
    if name.endswith(".onnx"):
        from imgatlas.backbones.onnx_file import onnx_file

        return onnx_file(Path(name), **kwargs)
    if "@block" in name:  # an EfficientNet-Lite's features after one of its blocks
        from imgatlas.backbones.efficientnet_lite import block_backbone

        base, _, block = name.partition("@block")
        if base in _factories and block.isascii() and block.isdigit():
            return block_backbone(base, int(block),
                                  cache_dir=Path(cache_dir) if cache_dir else None)
    try:
        factory = _factories[name]
    except KeyError:
        raise UnknownBackbone(
            f"Unknown backbone {name!r}; choose one of {', '.join(list_backbones())} "
            "or give a path to an .onnx file."
        ) from None
    return factory(cache_dir=Path(cache_dir) if cache_dir else None, **kwargs)


def describe_backbones() -> list[dict[str, Any]]:
    """Name, input size, dimension, weights and help of every registered backbone (read from
    the cfgs: nothing is built or loaded)."""
    from imgatlas.backbones import efficientnet_lite, raw_pixels, tiny

    cfgs = {**efficientnet_lite.default_cfgs, **raw_pixels.default_cfgs, **tiny.default_cfgs}
    out = []
    for name in list_backbones():
        cfg = cfgs.get(name)
        doc = (_factories[name].__doc__ or "").strip().splitlines()
        out.append({"name": name, "help": doc[0] if doc else (cfg.weights if cfg else ""),
                    "input_size": list(cfg.input_size) if cfg else None,
                    "dim": cfg.dim if cfg else None, "weights": cfg.weights if cfg else None,
                    "params": []})
    return out
