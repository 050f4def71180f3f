"""The code-spec language: ``FAMILY[:SIZE][@N][+MODIFIER]``, checked against the registry.

``itq:512+dsh`` = the ``itq`` family, 512 bits, trained further with the ``dsh`` modifier;
``umap:16@2000`` = 16 UMAP dimensions fitted on 2,000 sampled images. What each family and
modifier means lives with the family class (``index/families/``); this module only parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgatlas.errors import ConfigError
from imgatlas.registry import Registry

CODES = Registry("code family")
MODIFIERS = {
    "smooth": "kNN diffusion of the collection before coding, float query expansion",
    "rerank": "re-rank a PQ shortlist on the full vectors",
    "learn": "smoothed ITQ codes, a learned linear query map, query expansion in Hamming "
             "space",
    "dsh": "the +learn layer trained further with a DSH-style loss on neighbour pairs, "
           "both sides coded by it",
}


@dataclass(frozen=True)
class Spec:
    family: str
    size: int | None
    modifier: str | None = None
    fit_size: int | None = None  # fit on this many sampled images, map the rest

    def __str__(self) -> str:
        core = self.family if self.size is None else f"{self.family}:{self.size}"
        if self.fit_size is not None:
            core += f"@{self.fit_size}"
        return core + (f"+{self.modifier}" if self.modifier else "")

    @property
    def smooth(self) -> bool:
        return self.modifier == "smooth"

    @property
    def rerank(self) -> bool:
        return self.modifier == "rerank"

    @property
    def learned(self) -> bool:
        """Binary codes from a learned layer (+learn, +dsh): Hamming search, a query map."""
        return self.modifier in ("learn", "dsh")


def spec_help() -> str:
    fams = " | ".join(f"{e.name}" + (f":{e.extra['size']}" if e.extra.get("size") else "")
                      for e in CODES)
    mods = "; ".join(f"+{m}: {h} ({', '.join(e.name for e in CODES if m in e.extra['modifiers'])})"
                     for m, h in MODIFIERS.items())
    return f"{fams}; modifiers {mods}; umap:D@N fits on N sampled images; e.g. itq:512+dsh"


def parse_spec(text: str) -> Spec:
    m = re.fullmatch(r"([a-z]+)(?::(\d+))?(?:@(\d+))?(?:\+([a-z]+))?", text.strip())
    if not m or m.group(1) not in CODES:
        raise ConfigError(f"Unknown code spec {text!r}; families are "
                          f"{', '.join(CODES.names())} (e.g. itq:512+dsh).")
    family, size, fit_size, modifier = m.groups()
    entry = CODES[family]
    if modifier is not None and modifier not in entry.extra["modifiers"]:
        takes = [e.name for e in CODES if modifier in e.extra["modifiers"]]
        why = entry.extra.get("why_not", {}).get(modifier, "")
        raise ConfigError(
            f"+{modifier} is defined for {', '.join(takes) or 'no family'} codes, not {family}"
            f"{'; ' + why if why else ''}. Got {text!r} instead.")
    if fit_size is not None and not entry.extra.get("fit_sample"):
        raise ConfigError(f"@N (fit on a sample) is defined for umap codes only. Got {text!r} "
                          "instead.")
    if size is None and entry.extra.get("default_size") is not None:
        size = entry.extra["default_size"]
    if size is not None and entry.extra.get("default_size") is None:
        raise ConfigError(f"{family} codes take no size. Got {text!r} instead.")
    if size is not None and int(size) < 1:
        raise ConfigError(f"A code size must be at least 1. Got {text!r} instead.")
    if size is not None and int(size) > 65_536:
        raise ConfigError(f"A code size must be at most 65536. Got {text!r} instead.")
    if entry.extra.get("bits") and int(size) % 8:
        raise ConfigError(f"Binary codes need a multiple of 8 bits. Got {size} instead.")
    if fit_size is not None and int(fit_size) < 10:
        raise ConfigError(f"umap:D@N needs N >= 10 images to fit. Got {fit_size} instead.")
    return Spec(family, int(size) if size is not None else None, modifier,
                int(fit_size) if fit_size is not None else None)
