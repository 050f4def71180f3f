"""The JSON API (with OpenAPI at /docs and /openapi.json); the pages call it too."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from imgatlas.errors import ConfigError
from imgatlas.serve._security import csrf_ok
from imgatlas.serve._state import PER_PAGE, AppState, image_file
from imgatlas.serve._views import (
    image_details,
    inspection_page,
    members_page,
    parse_id,
    plain_int,
    state,
)

router = APIRouter(prefix="/api")


async def read_upload(request: Request, upload: UploadFile) -> bytes:
    """At most the size cap (413 beyond); the content decides what it is, not its name."""
    cap = state(request).settings.max_upload
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise HTTPException(413, f"upload larger than {cap // 2**20} MB")
    if not data:
        raise HTTPException(415, "empty upload: not an image")
    return data


class Health(BaseModel):
    status: str
    images: int


class Hit(BaseModel):
    id: int
    score: float
    similarity: float = Field(ge=0, le=1, description="0..1, higher is closer")
    path: str | None
    label: str | None
    cluster: int | None = None
    exact: bool = False
    tags: list[str] | None = None


class SearchResult(BaseModel):
    results: list[Hit]
    index: str | None = None
    prediction: dict[str, Any] | None = None


class LabelEdit(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=10_000)
    label: str | None = Field(default=None, max_length=200)
    source: str = Field(default="web", pattern=r"^(web|suggested)$")


class ClusterName(BaseModel):
    name: str = Field(max_length=200)


class MoveEdit(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=10_000)
    to: int | Literal["new"] = Field(description="a cluster id, or 'new'")


class Selection(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=10_000)


class MergeEdit(BaseModel):
    clusters: list[int] = Field(min_length=2, max_length=1000)


class SplitEdit(BaseModel):
    cluster: int
    k: int = Field(default=2, ge=2, le=50)


class RegroupEdit(BaseModel):
    k: int = Field(ge=1, le=1000)


@router.get("/health", response_model=Health)
def health(request: Request) -> dict[str, Any]:
    with state(request).read() as ws:
        return {"status": "ok", "images": ws.status_counts().get("ok", 0)}


@router.post("/search", response_model=SearchResult)
async def search(request: Request, image: UploadFile = File(...),  # noqa: B008
                 k: int = Form(10, ge=1, le=200)) -> dict[str, Any]:
    """Images most like an uploaded one; with a model loaded, its prediction too."""
    st = state(request)
    data = await read_upload(request, image)

    def work() -> dict[str, Any]:  # off the event loop: decode and model release the GIL
        out = {"results": st.photo_search(st.decode_upload(data), k, data),
               "index": st.index()[2]}
        if st.model() is not None:
            out["prediction"] = st.classify(data)
        return out

    return await run_in_threadpool(work)


@router.post("/search/sketch", response_model=SearchResult)
async def search_sketch(request: Request, image: UploadFile = File(...),  # noqa: B008
                        k: int = Form(10, ge=1, le=200)) -> dict[str, Any]:
    """Photos of what a drawing shows (a PNG; transparent pixels are background)."""
    st = state(request)
    data = await read_upload(request, image)
    hits, how = await run_in_threadpool(st.sketch_search, data, k)
    return {"results": hits, "index": how}


@router.post("/classify")
async def classify(request: Request, image: UploadFile = File(...)  # noqa: B008
                   ) -> dict[str, Any]:
    """The loaded model's prediction: the ``imgatlas predict`` JSON."""
    st = state(request)
    if st.model() is None:
        raise HTTPException(404, "no model loaded: start the app with --model DIR")
    data = await read_upload(request, image)
    return await run_in_threadpool(st.classify, data)


@router.get("/clusters")
def clusters(request: Request) -> dict[str, Any]:
    st = state(request)
    with st.read() as ws:
        run = st.run_id(ws)
        if run is None:
            return {"run": None, "clusters": []}
        sizes = ws.cluster_sizes(run)
        names = ws.cluster_names(run)
    return {"run": run, "clusters": [{"id": c, "size": n, "name": names.get(c)}
                                     for c, n in sizes.items()]}


@router.get("/clusters/{cluster}")
def cluster_members(request: Request, cluster: str, page: int = 1) -> dict[str, Any]:
    st = state(request)
    c = plain_int(cluster)
    if c is None:
        raise HTTPException(404, "no such cluster")
    with st.read() as ws:
        run = st.run_id(ws)
        if run is None or c not in ws.cluster_sizes(run):
            raise HTTPException(404, "no such cluster")
        return members_page(ws, run, c, max(1, page), PER_PAGE)


@router.post("/clusters/{cluster}/name")
def name_cluster(request: Request, cluster: str, body: ClusterName) -> dict[str, Any]:
    st = state(request)
    _check_edit(request)
    c = plain_int(cluster)
    with st.write("rename cluster") as ws:
        run = st.run_id(ws)
        if run is None or c is None or c not in ws.cluster_sizes(run):
            raise HTTPException(404, "no such cluster")
        ws.name_cluster(run, c, body.name.strip())
    return {"run": run, "cluster": c, "name": body.name.strip() or None}


@router.post("/clusters/{cluster}/accept")
def accept_name(request: Request, cluster: str) -> dict[str, Any]:
    """Give the cluster its suggested name (one click)."""
    from imgatlas.names import accept_suggestions

    st = state(request)
    _check_edit(request)
    c = plain_int(cluster)
    with st.write("accept name") as ws:
        run = st.run_id(ws)
        if run is None or c is None or c not in ws.cluster_sizes(run):
            raise HTTPException(404, "no such cluster")
        got = accept_suggestions(ws, run, [c])
    if c not in got:
        raise HTTPException(409, "this cluster has no suggested name to accept")
    return {"run": run, "cluster": c, "name": got[c]}


async def _edit(request: Request, what: str, fn: Any, *args: Any) -> dict[str, Any]:
    """One correction: a derived run made off the event loop; the app then shows it."""
    st = state(request)
    _check_edit(request)

    def work() -> dict[str, Any]:
        with st.write(what) as ws:
            res = fn(ws, *args, st.run_id(ws))
        st.follow(res["run_id"])
        return {"run": res["run_id"], "derived_from": res.get("derived_from"),
                "edit": res.get("edit"), "sizes": res.get("sizes")}

    return await run_in_threadpool(work)


@router.post("/edits/move")
async def move_images(request: Request, body: MoveEdit) -> dict[str, Any]:
    """Move images to another cluster or a new one: a new run (undo takes it back)."""
    from imgatlas.edit import move

    return await _edit(request, "move", move, body.ids, body.to)


@router.post("/edits/set-aside")
async def set_aside(request: Request, body: Selection) -> dict[str, Any]:
    """Take images out of every cluster (junk): a new run."""
    from imgatlas.edit import set_aside as _set_aside

    return await _edit(request, "set aside", _set_aside, body.ids)


@router.post("/edits/merge")
async def merge_clusters(request: Request, body: MergeEdit) -> dict[str, Any]:
    """Merge clusters into the first one given: a new run."""
    from imgatlas.edit import merge

    return await _edit(request, "merge", merge, body.clusters)


@router.post("/edits/split")
async def split_cluster(request: Request, body: SplitEdit) -> dict[str, Any]:
    """Split a cluster in k by clustering its members again: a new run."""
    from imgatlas.edit import split

    return await _edit(request, "split", split, body.cluster, body.k)


@router.post("/edits/regroup")
async def regroup(request: Request, body: RegroupEdit) -> dict[str, Any]:
    """Fewer or more groups (the merge tree cut, or the loosest clusters split): a new run."""
    from imgatlas.edit import regroup as _regroup

    return await _edit(request, "regroup", _regroup, body.k)


@router.post("/edits/undo")
def undo(request: Request) -> dict[str, Any]:
    """Undo the latest correction: the run it edited is shown again, as it was."""
    from imgatlas.edit import undo as _undo

    st = state(request)
    _check_edit(request)
    with st.write("undo") as ws:
        out = _undo(ws, st.run_id(ws))
    st.follow(out["run_id"])
    return {"run": out["run_id"], "undone": out["undone"], "edit": out["edit"]}


@router.get("/search/text", response_model=SearchResult)
def search_text(request: Request, q: str = Query(max_length=200), k: int = Query(12, ge=1,
                                                                                  le=200)
                ) -> dict[str, Any]:
    """Images whose tags are the named class or anything under the named group ("dog",
    "vehicle"); an unknown word is a 400 naming close words."""
    from imgatlas.names import text_search

    st = state(request)
    with st.read() as ws:
        out = text_search(ws, ws.pick_store(), q, k)
        st.annotate(ws, out["results"])
    by = [m["by"] for m in out["matched"] if "by" in m]
    return {"results": out["results"], "index": f"text tower of {by[0]}" if by else
            "tags: " + ", ".join(m["name"] for m in out["matched"])}


@router.get("/images/{image_id}")
def image(request: Request, image_id: str) -> dict[str, Any]:
    return image_details(state(request), image_id)


@router.get("/inspection")
def inspection(request: Request, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """What the latest inspection found: counts, near-duplicate groups and flagged images
    (one page of each)."""
    st = state(request)
    with st.read() as ws:
        return inspection_page(ws, max(1, page), max(1, min(per_page, 200)))


@router.get("/images/{image_id}/neighbours")
def neighbours(request: Request, image_id: str, k: int = 12) -> dict[str, Any]:
    return {"results": state(request).neighbours(parse_id(image_id), max(1, min(k, 100)))}


@router.get("/images/{image_id}/thumbnail")
def thumbnail(request: Request, image_id: str) -> FileResponse:
    from imgatlas.report import make_thumbnail, thumb_dir, thumb_media_type, thumb_name

    st = state(request)
    with st.read() as ws:
        row = ws.image(parse_id(image_id))
        folder = thumb_dir(ws)
    src = image_file(row) if row is not None else None
    if src is None:
        raise HTTPException(404, "no such image")
    out = folder / thumb_name(row)
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        if not make_thumbnail(src, out):
            raise HTTPException(404, "this image cannot be read")
    return FileResponse(out, media_type=thumb_media_type(out),
                        headers={"cache-control": "private, max-age=86400"})


@router.get("/images/{image_id}/file")
def original(request: Request, image_id: str) -> FileResponse:
    st = state(request)
    with st.read() as ws:
        row = ws.image(parse_id(image_id))
    src = image_file(row) if row is not None and row.status == "ok" else None
    if src is None:
        raise HTTPException(404, "no such image")
    media = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
             "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff"}
    return FileResponse(src, media_type=media.get(row.format or "", "application/octet-stream"),
                        headers={"content-disposition": "inline"})


@router.get("/map")
def map_points(request: Request) -> dict[str, Any]:
    """The 2-D map of the run (the report's layout, cached per run): PCA unless a UMAP
    layout is already cached (computing UMAP takes a minute; the report makes it)."""
    from imgatlas.report import clustering_space, map_coordinates

    st = state(request)
    with st.read() as ws:
        run_id = st.run_id(ws)
        if run_id is None:
            raise HTTPException(404, "no clustering run: run 'imgatlas cluster' first")
        run = ws.get_run(run_id, "cluster")
        ids, clusters, labels, _ = ws.assignments(run_id)
        X, _ = clustering_space(ws, run, ids, reduce=False)
        maps = [run_id, run["params"].get("derived_from")]  # a correction keeps its parent's
        method = "umap" if any((ws.path / "maps" / f"run-{r}-umap.npy").exists()
                               for r in maps if r is not None) else "pca"
        xy, used = map_coordinates(ws, run, X, method, ids=ids)
        info = ws.display_and_label()
    return {"run": run_id, "method": used, "x": xy[:, 0].round(4).tolist(),
            "y": xy[:, 1].round(4).tolist(), "id": ids.tolist(),
            "cluster": clusters.tolist(), "name": [info[int(i)][0] for i in ids]}


@router.post("/labels")
def set_labels(request: Request, body: LabelEdit) -> dict[str, Any]:
    """Label images (``label: null`` removes it): the labels ``train --labels user``
    reads."""
    st = state(request)
    _check_edit(request)
    with st.write("labels") as ws:
        known = {r.id for r in ws.images()}
        bad = sorted(set(body.ids) - known)
        if bad:
            raise HTTPException(404, f"no usable image with id {bad[0]}")
        label = body.label.strip() if body.label else None
        n = ws.set_user_labels(((i, label) for i in body.ids), body.source)
    return {"labelled": n, "label": label}


@router.get("/labels/estimate")
def labels_estimate(request: Request) -> dict[str, Any]:
    """How much of the collection the labels given so far would get right once spread
    (estimated on the labels themselves, each fold held out in turn); null until two
    classes have two labels each."""
    from imgatlas.classify import estimate_workspace

    st = state(request)
    with st.read() as ws:
        return {"estimate": estimate_workspace(ws, spaces=st.label_spaces),
                "labels": len(ws.user_labels())}


@router.get("/suggestions")
def suggestions(request: Request, n: int = 12) -> dict[str, Any]:
    from imgatlas.classify import suggest_workspace

    st = state(request)
    with st.read() as ws:
        try:
            picks = suggest_workspace(ws, n=max(1, min(n, 100)))
        except ConfigError as e:
            raise HTTPException(409, str(e)) from None
        guess = _suggested_labels(st, ws, [p["id"] for p in picks])
    for p, g in zip(picks, guess, strict=True):
        p["suggested_label"] = g
    return {"results": picks}


def _suggested_labels(st: AppState, ws: Any, ids: list[int]) -> list[str | None]:
    """A label to accept for each suggestion: the loaded model's, if any; else the name of
    its cluster (a person's, or the suggested one), so a collection with no label yet
    starts from its groups' names."""
    m = st.model()
    if m is None or m.kind != "head" or not ids:
        run = st.run_id(ws)
        if run is None or not ids:
            return [None] * len(ids)
        from imgatlas.names import cluster_names

        names = cluster_names(ws, run)
        clusters = ws.clusters_of(run, ids)
        out = []
        for i in ids:
            n = names.get(clusters.get(i, -1))
            out.append(n.display if n is not None and (n.name or n.suggested) else None)
        return out
    import numpy as np

    have, X = ws.pick_store().read(np.array(ids))
    preds = m.predict_features(m.logits_from_features(X), X, [str(i) for i in have])
    by_id = {int(i): p["label"] for i, p in zip(have, preds, strict=True)}
    return [by_id.get(i) for i in ids]


def _check_edit(request: Request) -> None:
    st = state(request)
    if not st.settings.allow_edits:
        raise HTTPException(403, "edits are off: start the app with --allow-edits")
    if not csrf_ok(st.settings, request):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
