"""What the pages and the JSON API both show (one cluster's members, the inspection, one
image) and how both read a request (the app's state, plain ids): the one place both import,
so neither imports the other."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from fastapi import HTTPException, Request

from imgatlas.inspect import about_image, excluded_ids, find_leaks, groups, latest_inspection
from imgatlas.serve._state import AppState
from imgatlas.store import Workspace


def state(request: Request) -> AppState:
    return request.app.state.imgatlas


_PLAIN_INT = re.compile(r"-?[0-9]{1,12}")


def plain_int(raw: str | None) -> int | None:
    """``raw`` as an int when it is plain ASCII digits (an optional minus), else None.
    Not ``str.isdigit``: "²" and "٣" are digits to it, and ``int`` then fails or accepts."""
    return int(raw) if raw is not None and _PLAIN_INT.fullmatch(raw) else None


def parse_id(raw: str) -> int:
    """Image and cluster ids arrive as text: anything but a plain non-negative number is a
    404 (a path, ``..``, an encoded traversal), never a file-system lookup."""
    i = plain_int(raw)
    if i is None or i < 0:
        raise HTTPException(404, "no such image")
    return i


def names_of_run(ws: Workspace, run: int) -> dict[int, Any]:
    from imgatlas.names import cluster_names

    return cluster_names(ws, run)


def k_candidates(ws: Workspace, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The granularities ``--k auto`` found support for, of ``run`` or, for a correction,
    of the run it derives from (what the overview offers before "fewer / more groups")."""
    seen = set()
    while run is not None and run["id"] not in seen:
        seen.add(run["id"])
        sweep = (run.get("results") or {}).get("k_selection") or {}
        if sweep.get("candidates"):
            return list(sweep["candidates"])
        origin = run["params"].get("derived_from")
        run = ws.get_run(int(origin), "cluster") if origin is not None else None
    return []


def naming(n: Any) -> dict[str, Any]:
    """What a page shows of a cluster's name: the person's, else the suggestion (marked),
    and the tags."""
    if n is None:
        return {"display": None, "suggested": False, "tags": []}
    shown = n.display if (n.name or n.suggested) else None
    return {"display": shown, "suggested": n.suggested,
            "tags": n.suggestion.tags[:3] if n.suggestion else []}


def members_page(ws: Workspace, run: int, cluster: int, page: int, per_page: int,
                 hide: list[str] | None = None) -> dict[str, Any]:
    """One page of a cluster's members, centre outwards, with the cluster's label shares;
    ``hide``: leave out what the latest inspection puts under these names."""
    ids, clusters, labels, _ = ws.assignments(run)
    rows = np.flatnonzero(clusters == cluster)
    hidden = 0
    if hide:
        gone = excluded_ids(ws, hide)
        shown = np.array([int(ids[r]) not in gone for r in rows], dtype=bool)
        hidden = int((~shown).sum())
        rows = rows[shown]
    dist = ws.centre_distances(run)
    order = rows[np.argsort([dist.get(int(ids[r]), np.inf) for r in rows], kind="stable")]
    user = ws.user_labels()
    names = ws.display_and_label()
    shares: dict[str, int] = {}
    for r in rows:
        lab = user.get(int(ids[r]), labels[r])
        if lab is not None:
            shares[lab] = shares.get(lab, 0) + 1
    n_pages = max(1, -(-len(order) // per_page))
    chunk = order[(page - 1) * per_page: page * per_page]
    return {"cluster": cluster, "size": int(len(rows)), "hidden": hidden, "page": page,
            "pages": n_pages,
            "name": ws.cluster_names(run).get(cluster),
            "members": [{"id": int(ids[r]), "path": names[int(ids[r])][0],
                         "label": user.get(int(ids[r]), labels[r])} for r in chunk],
            "label_shares": sorted(((k, v) for k, v in shares.items()),
                                   key=lambda kv: -kv[1])}


def inspection_page(ws: Workspace, page: int, per_page: int) -> dict[str, Any]:
    """One page of the latest inspection: near-duplicate groups (keep and copies), and the
    first ``per_page`` images of each flag (score order)."""
    if latest_inspection(ws) is None:
        return {"inspected": False, "counts": {}, "groups": [], "flags": {}, "page": 1,
                "pages": 1, "leaks": [], "n_leaks": 0}
    gs = groups(ws)
    chunk = gs[(page - 1) * per_page: page * per_page]
    flags = ws.flags()
    by_flag: dict[str, list[tuple[int, float, str]]] = {}
    for i, f, score, why in flags:
        by_flag.setdefault(f, []).append((i, score, why))
    shown = {f: v[:per_page] for f, v in by_flag.items()}
    leaks = find_leaks(ws, gs)
    names = ws.display_and_label({i for g in chunk for i in [g.keep, *g.copies]}
                                 | {i for v in shown.values() for i, _, _ in v}
                                 | {i for lk in leaks[:per_page] for i in lk["ids"]})
    counts = {"near_duplicate_groups": len(gs),
              "near_duplicate_copies": sum(len(g.copies) for g in gs),
              **{f: len(v) for f, v in by_flag.items()}}
    return {
        "inspected": True, "counts": counts, "page": page,
        "pages": max(1, -(-len(gs) // per_page)),
        "groups": [{"number": (page - 1) * per_page + n + 1, "similarity": g.similarity,
                    "why": g.why,
                    "keep": {"id": g.keep, "path": names[g.keep][0], "label": None},
                    "copies": [{"id": i, "path": names[i][0], "label": None,
                                "evidence": g.evidence[i]} for i in g.copies]}
                   for n, g in enumerate(chunk)],
        "flags": {f: [{"id": i, "path": names[i][0], "label": None, "score": round(sc, 3),
                       "reason": why} for i, sc, why in v] for f, v in shown.items()},
        "n_leaks": len(leaks),
        "leaks": [{"similarity": lk["similarity"],
                   "members": [{"id": i, "path": names[i][0], "label": None, "split": s}
                               for i, s in zip(lk["ids"], lk["splits"], strict=True)]}
                  for lk in leaks[:per_page]],
    }


def image_details(st: AppState, image_id: str) -> dict[str, Any]:
    """What the image page and ``GET /api/images/{id}`` show of one image (404 unless a
    catalogued id)."""
    i = parse_id(image_id)
    with st.read() as ws:
        row = ws.image(i)
        if row is None:
            raise HTTPException(404, "no such image")
        run = st.run_id(ws)
        user = ws.user_labels().get(i)
        cluster = ws.image_clusters(i).get(run) if run is not None else None
        inspected = about_image(ws, i)
        tags = _image_tags(ws, i) if row.status == "ok" else []
    return {"id": row.id, "path": row.display, "status": row.status, "reason": row.reason,
            "width": row.width, "height": row.height, "format": row.format,
            "size": row.size, "sha256": row.sha256, "folder_label": row.label,
            "label": user if user is not None else row.label, "cluster": cluster,
            "flags": inspected["flags"], "near_duplicates": inspected["near_duplicates"],
            "tags": tags}


def _image_tags(ws: Workspace, image_id: int) -> list[dict[str, Any]]:
    """The image's top ImageNet classes (none when the features have no classes)."""
    import numpy as np

    from imgatlas.names import class_head, describe, image_tags

    store = ws.pick_store()
    if class_head(store) is None:
        return []
    ids, classes, probs = image_tags(ws, store, np.array([image_id]))
    return describe(classes[0], probs[0]) if len(ids) else []


