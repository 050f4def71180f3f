"""What the latest inspection says, as every face shows it (CLI, report, web app, export),
and which images an ``--exclude`` leaves out."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.inspect._checks import CHECKS
from imgatlas.inspect._groups import Group, near_duplicate_groups
from imgatlas.inspect._leaks import LEAKS, find_leaks, leaked_copies, recorded_splits
from imgatlas.inspect._pixels import STATS_VERSION
from imgatlas.store import Workspace

DUPLICATES = "duplicates"  # the --exclude name of near-duplicate copies (keepers stay)


def latest_inspection(ws: Workspace) -> dict[str, Any] | None:
    """The latest finished inspect run, or None."""
    done = [r for r in ws.runs("inspect") if r["status"] == "done"]
    return done[-1] if done else None


def groups(ws: Workspace) -> list[Group]:
    """The near-duplicate groups as recorded now, each with its keeper."""
    stats = ws.pixel_stats(STATS_VERSION)
    widths = dict(zip(stats["id"].tolist(), stats["edge_width"].tolist(), strict=True))
    return near_duplicate_groups(ws, widths)


def inspection(ws: Workspace, limit: int | None = None) -> dict[str, Any]:
    """``{"near_duplicate_groups": [{"keep", "copies", "similarity", ...}], "flags": [{"id",
    "path", "flag", "score", "reason"}], "counts": {...}, "run_id"}``; paths as the catalog
    holds them (printable). ``limit`` caps the groups and the flags listed (not the
    counts)."""
    run = latest_inspection(ws)
    if run is None:
        raise ConfigError(f"Workspace {ws.path} has not been inspected yet; run "
                          f"'imgatlas inspect --workspace {ws.path}'.")
    gs = groups(ws)
    flags = ws.flags()
    names = ws.display_and_label({i for g in gs[:limit] for i in [g.keep, *g.copies]}
                                 | {f[0] for f in flags[:limit]})
    counts = {"near_duplicate_groups": len(gs),
              "near_duplicate_copies": sum(len(g.copies) for g in gs),
              **{name: 0 for name in CHECKS.names()}}
    for f in flags:
        counts[f[1]] = counts.get(f[1], 0) + 1
    counts["flagged_images"] = len({f[0] for f in flags})
    leaks = find_leaks(ws, gs)
    counts["leaks"] = len(leaks)
    return {
        "run_id": run["id"],
        "splits": recorded_splits(ws),
        "leaks": [{k: lk[k] for k in ("members", "ids", "splits", "similarity")}
                  for lk in (leaks if limit is None else leaks[:limit])],
        "near_duplicate_groups": [
            {"keep": names[g.keep][0], "keep_id": g.keep,
             "copies": [names[i][0] for i in g.copies], "copy_ids": g.copies,
             "similarity": round(g.similarity, 4), "keep_reason": g.why,
             "evidence": [g.evidence[i] for i in g.copies]} for g in gs[:limit]],
        "flags": [{"id": i, "path": names[i][0], "flag": f, "score": round(s, 4),
                   "reason": r} for i, f, s, r in flags[:limit]],
        "counts": counts,
    }


def about_image(ws: Workspace, image_id: int) -> dict[str, Any]:
    """What the latest inspection says of one image: its flags and its near-duplicate group
    (``role``: keep or copy; the other members' ids)."""
    if latest_inspection(ws) is None:
        return {"inspected": False, "flags": [], "near_duplicates": None}
    flags = [{"flag": f, "score": round(s, 4), "reason": r}
             for _i, f, s, r in ws.flags(image_id=image_id)]
    near = None
    for n, g in enumerate(groups(ws), 1):
        if image_id == g.keep or image_id in g.copies:
            near = {"group": n, "role": "keep" if image_id == g.keep else "copy",
                    "keep": g.keep, "copies": g.copies, "similarity": round(g.similarity, 4),
                    "evidence": g.evidence.get(image_id)}
            break
    return {"inspected": True, "flags": flags, "near_duplicates": near}


def exclusion_names() -> list[str]:
    return [DUPLICATES, LEAKS, *CHECKS.names()]


def parse_exclude(value: str | list[str] | None) -> list[str]:
    """``"duplicates,blurry"`` -> the names, each checked; a one-line error names the
    choices."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else [
        x for v in value for x in str(v).split(",")]
    names = [x.strip() for x in items if x.strip()]
    bad = [x for x in names if x not in exclusion_names()]
    if bad:
        raise ConfigError(f"Cannot exclude {bad[0]!r}: choose from "
                          f"{', '.join(exclusion_names())}.")
    return sorted(set(names), key=exclusion_names().index)


def excluded_ids(ws: Workspace, names: list[str]) -> set[int]:
    """The image ids the latest inspection puts under ``names`` (``duplicates``: every
    near-duplicate copy but the one kept)."""
    if not names:
        return set()
    if latest_inspection(ws) is None:
        raise ConfigError(f"--exclude {','.join(names)} needs an inspection first: run "
                          f"'imgatlas inspect --workspace {ws.path}'.")
    out: set[int] = set()
    if DUPLICATES in names:
        out |= {i for g in groups(ws) for i in g.copies}
    if LEAKS in names:
        out |= leaked_copies(ws, groups(ws))
    wanted = set(names) - {DUPLICATES, LEAKS}
    if wanted:
        out |= {i for i, f, _s, _r in ws.flags() if f in wanted}
    return out


def would_drop(ws: Workspace, ids: np.ndarray) -> dict[str, int]:
    """How many of ``ids`` each exclusion would leave out (what the report shows)."""
    if latest_inspection(ws) is None:
        return {}
    members = set(ids.tolist())
    found = groups(ws)
    out = {DUPLICATES: sum(1 for g in found for i in g.copies if i in members)}
    leaked = leaked_copies(ws, found) & members
    if leaked:
        out[LEAKS] = len(leaked)
    for i, f, _s, _r in ws.flags():
        if i in members:
            out[f] = out.get(f, 0) + 1
    return out
