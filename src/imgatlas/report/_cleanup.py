"""The report's clean-up section: what the latest inspection found, and what an
``--exclude`` would take out of this run."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas.inspect import (
    CHECKS,
    DUPLICATES,
    LEAKS,
    find_leaks,
    groups,
    latest_inspection,
    would_drop,
)
from imgatlas.store import Workspace

GROUPS_SHOWN = 30  # near-duplicate groups shown (largest first)
LEAKS_SHOWN = 30  # leaking groups shown
FLAGGED_SHOWN = 24  # images shown per flag (highest score first)


def cleanup_section(ws: Workspace, run_ids: np.ndarray) -> dict[str, Any] | None:
    """``{"counts", "drop", "groups": [{"keep", "copies", ...}], "flags": {flag: [...]},
    "ids"}`` (``ids``: every image the section shows, for thumbnails), or None when the
    workspace was never inspected."""
    run = latest_inspection(ws)
    if run is None:
        return None
    gs = groups(ws)
    flagged: dict[str, list[tuple[int, float, str]]] = {}
    for i, f, score, why in ws.flags():
        flagged.setdefault(f, []).append((i, score, why))
    shown_groups = gs[:GROUPS_SHOWN]
    shown_flags = {f: flagged[f][:FLAGGED_SHOWN] for f in CHECKS.names() if f in flagged}
    leaks = find_leaks(ws, gs)
    shown_leaks = leaks[:LEAKS_SHOWN]
    ids = {i for g in shown_groups for i in [g.keep, *g.copies]} | {
        i for v in shown_flags.values() for i, _, _ in v} | {
        i for lk in shown_leaks for i in lk["ids"]}
    drop = would_drop(ws, run_ids)
    return {
        "run_id": run["id"],
        "counts": {"groups": len(gs), "copies": sum(len(g.copies) for g in gs),
                   **{f: len(v) for f, v in flagged.items()}},
        "drop": [{"name": name, "n": drop.get(name, 0)}
                 for name in [DUPLICATES, LEAKS, *CHECKS.names()] if drop.get(name)],
        "splits": list(dict.fromkeys(s for lk in leaks for s in lk["splits"])),
        "n_leaks": len(leaks),
        "leaks": [{"similarity": lk["similarity"],
                   "members": [{"id": i, "split": s}
                               for i, s in zip(lk["ids"], lk["splits"], strict=True)]}
                  for lk in shown_leaks],
        "n_run": int(len(run_ids)),
        "groups": [{"number": n, "similarity": g.similarity, "keep_card": {"id": g.keep},
                    "why": g.why,
                    "copies": [{"id": i, "evidence": g.evidence[i]} for i in g.copies]}
                   for n, g in enumerate(shown_groups, 1)],
        "more_groups": max(0, len(gs) - GROUPS_SHOWN),
        "flags": {f: [{"id": i, "score": s, "reason": why} for i, s, why in v]
                  for f, v in shown_flags.items()},
        "help": {e.name: e.help for e in CHECKS},
        "ids": sorted(ids),
    }
