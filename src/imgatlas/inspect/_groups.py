"""Near-duplicate pairs -> groups, each with the member to keep."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from imgatlas.store import Workspace

SOFTER = 1.25  # edges this many times wider than the sharpest copy's: visibly softer


@dataclass(frozen=True)
class Group:
    keep: int  # image id
    copies: list[int]  # image ids, most alike first
    similarity: float  # the weakest pair that holds the group together
    evidence: dict[int, str]  # copy id -> what decided it
    why: str = ""  # why this member is the one to keep


# File types a camera or a phone writes; a copy saved again is often PNG, WEBP or BMP (a PNG
# with an alpha channel made from a JPEG is the copy, not the original)
CAMERA_TYPES = frozenset({"JPEG", "MPO", "HEIF", "HEIC", "AVIF", "TIFF", "DNG"})
_CAMERA_TAGS = (0x010F, 0x0110)  # EXIF Make, Model


def camera_exif(path: bytes) -> bool:
    """Whether the file carries the camera's EXIF (make or model): re-encoded copies
    usually lose it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            return any(exif.get(t) for t in _CAMERA_TAGS)
    except (OSError, ValueError, SyntaxError):
        return False



def near_duplicate_groups(ws: Workspace, edge_widths: dict[int, float] | None = None
                          ) -> list[Group]:
    """Connected groups of the recorded pairs, largest first. The member to keep is the
    largest (pixels), then one not visibly softer than the sharpest (``edge_widths``), then
    the least processed (the camera's EXIF, then a camera's file type over a re-encoded
    one), then the oldest file (an original is usually older than its copies), then the
    larger file; ``why`` says which of these decided."""
    pairs = ws.duplicate_pairs()
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, *_ in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    facts = ws.image_facts(list(parent))
    widths = {i: w for i, w in (edge_widths or {}).items()
              if w is not None and not math.isnan(w)}

    paths: dict[int, bytes] = {}
    exif: dict[int, bool] = {}

    def has_exif(i: int) -> bool:  # read only for members still tied on pixels
        if i not in exif:
            if not paths:
                paths.update((k, r.path) for k, r in ws.images_by_id(list(parent)).items())
            exif[i] = camera_exif(paths[i]) if i in paths else False
        return exif[i]

    def pixels_of(i: int) -> int:
        w, h = facts.get(i, (0, 0))[:2]
        return (w or 0) * (h or 0)

    def ranker(ids: list[int]) -> Callable[[int], tuple]:
        known = [widths[i] for i in ids if i in widths]
        sharpest = min(known) if known else 0.0
        most = max(pixels_of(i) for i in ids)

        def rank(i: int) -> tuple:
            w, h, fmt, size, mtime = facts.get(i, (0, 0, "", 0, 0))
            # softer than the sharpest copy by what a person sees (the blurry check's
            # ratio), not by measurement noise between a copy and its re-exposure
            soft = widths.get(i, sharpest) >= SOFTER * sharpest if known else False
            pixels = pixels_of(i)
            return (pixels, not soft, pixels == most and has_exif(i),
                    (fmt or "") in CAMERA_TYPES, -(mtime or 0), size or 0, -i)

        return rank

    weakest: dict[int, float] = {}
    direct: dict[tuple[int, int], tuple[float, str]] = {}
    for a, b, sim, _cos, _dist, evidence in pairs:
        root = find(a)
        weakest[root] = min(weakest.get(root, 1.0), sim)
        direct[(a, b)] = direct[(b, a)] = (sim, evidence)
    groups = []
    for root, ids in members.items():
        rank = ranker(ids)
        keep = max(ids, key=rank)
        link = {i: direct.get((i, keep), (0.0, "alike through another copy")) for i in ids}
        copies = sorted((i for i in ids if i != keep), key=lambda i: (-link[i][0], i))
        groups.append(Group(keep=keep, copies=copies, similarity=weakest[root],
                            evidence={i: link[i][1] for i in copies},
                            why=_why(rank(keep), [rank(i) for i in copies],
                                     facts.get(keep, (0, 0, "", 0, 0)))))
    groups.sort(key=lambda g: (-len(g.copies), g.keep))
    return groups


_REASONS = ("the most pixels ({w}×{h})", "as many pixels as any, and the sharpest",
            "as many pixels as any, and the camera's EXIF (the others have none)",
            "as many pixels as any, in the camera's file type ({fmt}; the others were "
            "saved again)", "as many pixels as any, and the oldest file",
            "as many pixels as any, and the largest file", "the first catalogued")


def _why(keep: tuple, others: list[tuple], fact: tuple) -> str:
    """Which part of the ranking set the keeper apart from the runner-up."""
    if not others:
        return ""
    runner = max(others)
    k = next((n for n, (a, b) in enumerate(zip(keep, runner, strict=True)) if a != b),
             len(_REASONS) - 1)
    w, h, fmt = fact[0] or 0, fact[1] or 0, fact[2] or "?"
    return "kept: " + _REASONS[min(k, len(_REASONS) - 1)].format(w=w, h=h, fmt=fmt)
