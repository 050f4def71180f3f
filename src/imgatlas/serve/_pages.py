"""Server-rendered pages (Jinja2, autoescaped); their scripts are static files (the CSP
allows no inline script) that call the JSON API."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from imgatlas import __version__
from imgatlas.inspect import (
    excluded_ids,
    exclusion_names,
    groups,
    latest_inspection,
    parse_exclude,
)
from imgatlas.serve._api import plain_int, state
from imgatlas.serve._security import csrf_token
from imgatlas.serve._state import PER_PAGE
from imgatlas.store import Workspace

router = APIRouter()
CARD_THUMBS = 8


def render(request: Request, template: str, **ctx: Any) -> HTMLResponse:
    st = state(request)
    env = request.app.state.templates
    html = env.get_template(template).render(
        version=__version__, csrf=csrf_token(st.settings), edits=st.settings.allow_edits,
        has_model=st.settings.model is not None, **ctx)
    return HTMLResponse(html)


def names_of_run(ws: Workspace, run: int) -> dict[int, Any]:
    from imgatlas.names import cluster_names

    return cluster_names(ws, run)


def _naming(n: Any) -> dict[str, Any]:
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


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    st = state(request)
    with st.read() as ws:
        counts = ws.status_counts()
        run = st.run_id(ws)
        cards = []
        derived = None
        if run is not None:
            named = names_of_run(ws, run)
            for c, n in ws.cluster_sizes(run).items():
                top = members_page(ws, run, c, 1, CARD_THUMBS)
                cards.append({"id": c, "size": n, **_naming(named.get(c)),
                              "thumbs": top["members"], "shares": top["label_shares"][:3]})
            r = ws.get_run(run, "cluster")
            if r["params"].get("derived_from") is not None:
                derived = {"from": r["params"]["derived_from"], "edit": r["params"]["edit"]}
        runs = [{"id": r["id"], "kind": r["kind"], "status": r["status"],
                 "error": r["error"]} for r in ws.runs()][-15:]
        skipped = ws.unusable_images(limit=200)
    return render(request, "overview.html.j2", title="imgatlas", counts=counts,
                  usable=counts.get("ok", 0), run=run, clusters=cards, runs=runs[::-1],
                  skipped=skipped, index=st.index()[2], derived=derived)


@router.get("/clusters/{cluster}", response_class=HTMLResponse)
def cluster_page(request: Request, cluster: str, page: int = 1,
                 hide: list[str] = Query(default=[])) -> HTMLResponse:  # noqa: B008
    st = state(request)
    c = plain_int(cluster)
    with st.read() as ws:
        run = st.run_id(ws)
        if run is None or c is None or c not in ws.cluster_sizes(run):
            raise HTTPException(404, "no such cluster")
        inspected = latest_inspection(ws) is not None
        hidden = [h for h in parse_exclude(hide) if inspected]
        data = members_page(ws, run, c, max(1, page), PER_PAGE, hidden)
        named = names_of_run(ws, run)
        others = [{"id": k, "display": _naming(v)["display"]} for k, v in named.items()
                  if k != c and k >= 0]
    return render(request, "cluster.html.j2", title=f"cluster {c}", run=run, hide=hidden,
                  choices=exclusion_names() if inspected else [], others=others,
                  **data, **_naming(named.get(c)))


def inspection_page(ws: Workspace, page: int, per_page: int) -> dict[str, Any]:
    """One page of the latest inspection: near-duplicate groups (keep and copies), and the
    first ``per_page`` images of each flag (score order)."""
    if latest_inspection(ws) is None:
        return {"inspected": False, "counts": {}, "groups": [], "flags": {}, "page": 1,
                "pages": 1}
    gs = groups(ws)
    chunk = gs[(page - 1) * per_page: page * per_page]
    flags = ws.flags()
    by_flag: dict[str, list[tuple[int, float, str]]] = {}
    for i, f, score, why in flags:
        by_flag.setdefault(f, []).append((i, score, why))
    shown = {f: v[:per_page] for f, v in by_flag.items()}
    names = ws.display_and_label({i for g in chunk for i in [g.keep, *g.copies]}
                                 | {i for v in shown.values() for i, _, _ in v})
    counts = {"near_duplicate_groups": len(gs),
              "near_duplicate_copies": sum(len(g.copies) for g in gs),
              **{f: len(v) for f, v in by_flag.items()}}
    return {
        "inspected": True, "counts": counts, "page": page,
        "pages": max(1, -(-len(gs) // per_page)),
        "groups": [{"number": (page - 1) * per_page + n + 1, "similarity": g.similarity,
                    "keep": {"id": g.keep, "path": names[g.keep][0], "label": None},
                    "copies": [{"id": i, "path": names[i][0], "label": None,
                                "evidence": g.evidence[i]} for i in g.copies]}
                   for n, g in enumerate(chunk)],
        "flags": {f: [{"id": i, "path": names[i][0], "label": None, "score": round(sc, 3),
                       "reason": why} for i, sc, why in v] for f, v in shown.items()},
    }


@router.get("/clean", response_class=HTMLResponse)
def clean_page(request: Request, page: int = 1) -> HTMLResponse:
    st = state(request)
    with st.read() as ws:
        data = inspection_page(ws, max(1, page), 30)
    return render(request, "clean.html.j2", title="clean up", **data)


@router.get("/images/{image_id}", response_class=HTMLResponse)
def image_page(request: Request, image_id: str) -> HTMLResponse:
    from imgatlas.serve._api import image as image_json

    st = state(request)
    meta = image_json(request, image_id)
    prediction = None
    m = st.model()
    if m is not None and meta["status"] == "ok":
        with st.read() as ws:
            if m.kind == "head":
                have, X = ws.pick_store().read(np.array([meta["id"]]))
                if len(have):
                    prediction = m.predict_features(m.logits_from_features(X), X,
                                                    [meta["path"]])[0]
            else:
                row = ws.image(meta["id"])
                from imgatlas.classify._predict import predict_files
                from imgatlas.serve._state import image_file

                src = image_file(row) if row else None
                if src:
                    prediction = predict_files(m, [src])[0]
    hits = st.neighbours(meta["id"]) if meta["status"] == "ok" else []
    return render(request, "image.html.j2", title=f"image {meta['id']}", image=meta,
                  prediction=prediction, neighbours=hits)


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request) -> HTMLResponse:
    return render(request, "map.html.j2", title="map")


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request) -> HTMLResponse:
    return render(request, "search.html.j2", title="search")


@router.get("/label", response_class=HTMLResponse)
def label_page(request: Request) -> HTMLResponse:
    if not state(request).settings.allow_edits:
        raise HTTPException(403, "edits are off: start the app with --allow-edits")
    return render(request, "label.html.j2", title="label")
