"""Algorithms picked by name, in the style of timm's model registry.

A :class:`Registry` holds :class:`Entry` objects: a name, the factory that builds the
algorithm, a line of help, the parameters it takes (type, default, choices, help), and
whether it takes a number of clusters. The CLI builds its options and help from them, the
Python API validates against them, and ``imgatlas algorithms --json`` (or the web app) lists
them. Clustering methods, reduction steps and search-code families each have one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from imgatlas.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter an algorithm takes, as the CLI and the API expose it."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    cli: str | None = None  # the CLI's flag when it is not --<name with dashes>
    low: float | None = None  # the smallest value allowed (inclusive unless low_open)
    high: float | None = None  # the largest value allowed (inclusive)
    low_open: bool = False  # True: the value must be strictly above ``low``

    @property
    def flag(self) -> str:
        return "--" + (self.cli or self.name.replace("_", "-"))

    def convert(self, value: Any, owner: str) -> Any:
        """``value`` (a string from a spec or the CLI, or a Python value) as ``type``."""
        if value is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                out: Any = value.lower() in ("1", "true", "yes")
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(f"The '{self.name}' parameter of {owner} must be a "
                              f"{self.type.__name__}. Got {value!r} instead.") from None
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"The '{self.name}' parameter of {owner} must be one of "
                              f"{', '.join(self.choices)}. Got {value!r} instead.")
        if isinstance(out, int | float) and not isinstance(out, bool):
            bound = self.bounds_text()
            if (out != out or (self.low is not None and (out < self.low or (
                    self.low_open and out == self.low)))
                    or (self.high is not None and out > self.high)):
                raise ConfigError(f"The '{self.name}' parameter of {owner} must be {bound}. "
                                  f"Got {value!r} instead.")
        return out

    def bounds_text(self) -> str:
        """'at least 1', 'above 0', 'between 0 and 1' ..."""
        if self.low is not None and self.high is not None:
            return f"{'above ' if self.low_open else ''}between {self.low:g} and {self.high:g}"
        if self.low is not None:
            return f"{'above' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None:
            return f"at most {self.high:g}"
        return "a number"

    def click_type(self) -> Any:
        """The click type of this parameter's CLI option (a range when it has bounds)."""
        import click

        if self.choices:
            return click.Choice(self.choices)
        if self.type in (int, float) and (self.low is not None or self.high is not None):
            rng = click.IntRange if self.type is int else click.FloatRange
            return rng(min=self.low, max=self.high, min_open=self.low_open)
        return {int: int, float: float}.get(self.type, str)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.type.__name__
        return d


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    help: str
    params: tuple[Param, ...] = ()
    takes_k: bool = False
    needs: str | None = None  # the optional extra it needs, e.g. "train" (PyTorch)
    extra: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Validate and convert ``given`` keyword options (``None`` = not given)."""
        out = {}
        for k, v in given.items():
            if v is None:
                continue
            p = self.param(k)
            if p is None:
                takes = ", ".join(p.name for p in self.params) or "no options"
                raise ConfigError(f"{self.name} does not take '{k}' (it takes {takes}).")
            out[k] = p.convert(v, self.name)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help, "takes_k": self.takes_k,
                "needs": self.needs, "params": [p.describe() for p in self.params],
                **self.extra}


class Registry:
    """Named entries of one kind of algorithm."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, help: str, params: tuple[Param, ...] = (),
                 takes_k: bool = False, needs: str | None = None, **extra: Any
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the decorated factory (or class) under ``name``."""

        def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, factory, help, tuple(params), takes_k, needs,
                                        dict(extra))
            return factory

        return deco

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"Unknown {self.kind} {name!r}; choose one of "
                              f"{', '.join(self.names())}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

    def all_params(self) -> dict[str, tuple[Param, list[str]]]:
        """Every parameter name across entries, with the first declaration and the entries
        that take it: the CLI makes one option of each."""
        out: dict[str, tuple[Param, list[str]]] = {}
        for e in self:
            for p in e.params:
                if p.name in out:
                    out[p.name][1].append(e.name)
                else:
                    out[p.name] = (p, [e.name])
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [e.describe() for e in self]
