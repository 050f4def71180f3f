"""Backbone registry in the style of timm: ``@register_backbone`` on a factory function; the
factory's module holds its ``default_cfgs``, read at registration (the registry never imports
its members, so a new backbone is one new module)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgatlas.backbones._base import Backbone
from imgatlas.backbones._cfg import BackboneCfg
from imgatlas.errors import UnknownBackbone

_factories: dict[str, Callable[..., Backbone]] = {}
_cfgs: dict[str, BackboneCfg] = {}
# "<registered name><marker><suffix>" -> builder(base, suffix, cache_dir) or None if not its own
_variants: dict[str, Callable[[str, str, Path | None], Backbone | None]] = {}


_info: dict[str, dict[str, Any]] = {}


def register_backbone(fn: Callable[..., Backbone], *, name: str | None = None,
                      info: dict[str, Any] | None = None) -> Callable[..., Backbone]:
    """Register ``fn`` under its own name (or ``name``); it returns a :class:`Backbone`. Its
    cfg is the entry of the same name in its module's ``default_cfgs`` (as timm does);
    ``info``: what ``describe_backbones`` shows of a backbone with no cfg until first use
    (dim, input_size, weights, licence, cost, help)."""
    name = name or fn.__name__
    _factories[name] = fn
    cfg = getattr(sys.modules.get(fn.__module__), "default_cfgs", {}).get(name)
    if cfg is not None:
        _cfgs[name] = cfg
    if info:
        _info[name] = info
    return fn


def register_variant(marker: str,
                     build: Callable[[str, str, Path | None], Backbone | None]) -> None:
    """Names such as ``efficientnet_lite0@block5``: ``build(base, suffix, cache_dir)`` makes
    the backbone, or returns None when the suffix is not one it knows."""
    _variants[marker] = build


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
    if name.startswith("hf:"):
        from imgatlas.backbones.hf import hf_backbone

        return hf_backbone(name, cache_dir=cache_dir, **kwargs)
    for marker, build in _variants.items():
        base, found, suffix = name.partition(marker)
        if found and base in _factories:
            made = build(base, suffix, Path(cache_dir) if cache_dir else None)
            if made is not None:
                return made
    try:
        factory = _factories[name]
    except KeyError:
        raise UnknownBackbone(
            f"Unknown backbone {name!r}; choose one of {', '.join(list_backbones())}, "
            "hf:ORG/NAME for a Hugging Face model, or a path to an .onnx file."
        ) from None
    return factory(cache_dir=Path(cache_dir) if cache_dir else None, **kwargs)


def describe_backbones() -> list[dict[str, Any]]:
    """Name, input size, dimension, weights and help of every registered backbone (read from
    the cfgs: nothing is built or loaded)."""
    out = []
    for name in list_backbones():
        cfg = _cfgs.get(name)
        doc = (_factories[name].__doc__ or "").strip().splitlines()
        row = {"name": name, "help": doc[0] if doc else (cfg.weights if cfg else ""),
               "input_size": list(cfg.input_size) if cfg else None,
               "dim": cfg.dim if cfg else None, "weights": cfg.weights if cfg else None,
               "params": []}
        row.update(_info.get(name, {}))
        out.append(row)
    return out
