"""Server-rendered pages (Jinja2, autoescaped); their scripts are static files (the CSP
allows no inline script) that call the JSON API."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from imgatlas._version import __version__
from imgatlas.inspect import (
    exclusion_names,
    latest_inspection,
    parse_exclude,
)
from imgatlas.serve._security import csrf_token
from imgatlas.serve._state import PER_PAGE
from imgatlas.serve._views import (
    image_details,
    inspection_page,
    k_candidates,
    members_page,
    names_of_run,
    naming,
    plain_int,
    state,
)

router = APIRouter()
CARD_THUMBS = 8


def render(request: Request, template: str, **ctx: Any) -> HTMLResponse:
    st = state(request)
    env = request.app.state.templates
    html = env.get_template(template).render(
        version=__version__, csrf=csrf_token(st.settings), edits=st.settings.allow_edits,
        has_model=st.settings.model is not None, **ctx)
    return HTMLResponse(html)


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
                cards.append({"id": c, "size": n, **naming(named.get(c)),
                              "thumbs": top["members"], "shares": top["label_shares"][:3]})
            r = ws.get_run(run, "cluster")
            if r["params"].get("derived_from") is not None:
                derived = {"from": r["params"]["derived_from"], "edit": r["params"]["edit"]}
            groups = sum(1 for c in cards if c["id"] >= 0)
            choices = [c for c in k_candidates(ws, r) if c["k"] != groups]
        runs = [{"id": r["id"], "kind": r["kind"], "status": r["status"],
                 "error": r["error"]} for r in ws.runs()][-15:]
        skipped = ws.unusable_images(limit=200)
    return render(request, "overview.html.j2", title="imgatlas", counts=counts,
                  usable=counts.get("ok", 0), run=run, clusters=cards, runs=runs[::-1],
                  skipped=skipped, index=st.index()[2], derived=derived,
                  k_choices=choices if run is not None else [])


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
        others = [{"id": k, "display": naming(v)["display"]} for k, v in named.items()
                  if k != c and k >= 0]
    return render(request, "cluster.html.j2", title=f"cluster {c}", run=run, hide=hidden,
                  choices=exclusion_names() if inspected else [], others=others,
                  **data, **naming(named.get(c)))


@router.get("/clean", response_class=HTMLResponse)
def clean_page(request: Request, page: int = 1) -> HTMLResponse:
    st = state(request)
    with st.read() as ws:
        data = inspection_page(ws, max(1, page), 30)
    return render(request, "clean.html.j2", title="clean up", **data)


@router.get("/images/{image_id}", response_class=HTMLResponse)
def image_page(request: Request, image_id: str) -> HTMLResponse:
    st = state(request)
    meta = image_details(st, image_id)
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
                from imgatlas.classify import predict_files
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
