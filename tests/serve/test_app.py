"""Every route and every refusal of the web app, through FastAPI's TestClient (no socket)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from imgatlas import api

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from imgatlas.serve import create_app  # noqa: E402
from imgatlas.serve._security import CSP, is_loopback  # noqa: E402


@pytest.fixture(scope="module")
def client(served_ws, cache_dir):
    ws, _ = served_ws
    return TestClient(create_app(ws, model=ws / "models" / "m", cache_dir=cache_dir))


@pytest.fixture(scope="module")
def editor(served_ws, cache_dir):
    ws, _ = served_ws
    c = TestClient(create_app(ws, allow_edits=True, cache_dir=cache_dir))
    c.get("/")  # the page sets the CSRF cookie
    return c


def png(rgb=(220, 30, 30), size=(40, 48)) -> bytes:
    a = np.clip(np.array(rgb) + np.random.default_rng(5).normal(0, 12, (*size, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_health_and_pages(client, served_ws):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "images": 38}
    for path in ("/", "/clusters/0", "/images/1", "/map", "/search"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert "<script>" not in r.text  # scripts come from /static only (the CSP)
        assert r.headers["x-frame-options"] == "DENY"
    home = client.get("/").text
    assert "broken.jpg" in home and "cluster 0" in home  # skipped files and their reason


def test_everything_from_the_data_is_escaped(client, served_ws):
    ws, _ = served_ws
    api.name_cluster(ws, api.runs(ws, "cluster")[-1]["id"], 1, "<b>bold</b> & co")
    pages = [client.get(p).text for p in ("/", "/clusters/1", "/clusters/2")]
    rows = api.status(ws)
    for html in pages:
        assert "<img src=x onerror" not in html and "<svg onload" not in html
        assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in pages[0]
    with_markup = [f for f in os.listdir(ws.parent / "img" / "red") if "onerror" in f]
    assert with_markup and rows["usable"] == 38
    # a non-UTF-8 name, shown escaped in JSON and pages
    hits = [client.get(f"/api/images/{i}").json() for i in range(1, 40)]
    names = [h["path"] for h in hits if "status" in h]
    assert any(n.endswith("caf\\xe9.jpg") for n in names)


def test_search_by_upload_returns_the_documented_shape(client):
    r = client.post("/api/search", files={"image": ("q.png", png(), "image/png")},
                    data={"k": "5"})
    assert r.status_code == 200
    out = r.json()
    assert len(out["results"]) == 5
    assert set(out["results"][0]) >= {"id", "score", "path", "label", "cluster"}
    assert out["results"][0]["label"] == "red"
    assert out["prediction"]["label"] in ("red", "unknown")  # the model is loaded
    assert {"probability", "top_k", "abstained"} <= set(out["prediction"])
    r = client.post("/api/classify", files={"image": ("q.png", png(), "image/png")})
    assert r.status_code == 200 and r.json()["top_k"]


def test_search_by_drawing(client):
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(img).ellipse((30, 30, 170, 170), outline=(0, 0, 0, 255), width=5)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    r = client.post("/api/search/sketch", files={"image": ("d.png", buf.getvalue(),
                                                           "image/png")}, data={"k": "3"})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    assert r.json()["index"] == "drawing searched as a photo"  # no sketch index built
    blank = io.BytesIO()
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)).save(blank, "PNG")
    r = client.post("/api/search/sketch", files={"image": ("b.png", blank.getvalue(),
                                                           "image/png")})
    assert r.status_code == 415 and "blank" in r.json()["detail"]


@pytest.mark.parametrize("body,status,needle", [
    (b"not an image at all", 415, "not a usable image"),
    (b"", 415, "empty upload"),
])
def test_uploads_are_sniffed(client, body, status, needle):
    r = client.post("/api/search", files={"image": ("cat.jpg", body, "image/jpeg")})
    assert r.status_code == status and needle in r.json()["detail"]


def test_upload_size_cap_and_pixel_bombs(served_ws, cache_dir):
    ws, _ = served_ws
    small = TestClient(create_app(ws, max_upload=1000, cache_dir=cache_dir))
    r = small.post("/api/search", files={"image": ("big.png", png(size=(200, 200)),
                                                   "image/png")})
    assert r.status_code == 413
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # 400 Mpx, a few KB
    app = create_app(ws, cache_dir=cache_dir)
    r = TestClient(app).post("/api/search", files={"image": ("b.png", bomb.getvalue(),
                                                             "image/png")})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/images/../../../etc/passwd/thumbnail", "/api/images/%2e%2e%2fetc%2fpasswd/file",
    "/api/images/..%2F..%2Fetc%2Fpasswd/thumbnail", "/api/images/-1/file",
    "/api/images//etc/passwd/file", "/api/images/1e3/thumbnail", "/api/images/99999/file",
    "/api/images/%2Fetc%2Fpasswd", "/images/..%2f..%2fetc%2fpasswd",
    # digits that are not ASCII digits ("²".isdigit() is True; found by the fuzz test)
    "/images/%C2%B2", "/api/images/%D9%A3/thumbnail",
])
def test_images_are_served_by_id_only(client, path):
    assert client.get(path).status_code == 404


def test_a_symlink_out_of_the_collection_is_not_served(served_ws, cache_dir, tmp_path):
    ws, root = served_ws
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    link = root / "red" / "zz-link.png"
    os.symlink(secret, link)
    try:
        api.scan(root, ws, labels_from_folders=True)
        c = TestClient(create_app(ws, cache_dir=cache_dir))
        with __import__("imgatlas").Workspace.open(ws) as w:  # the scan took the link
            row = next(r for r in w.images() if r.display.endswith("zz-link.png"))
        assert c.get(f"/api/images/{row.id}/file").status_code == 404
        assert c.get(f"/api/images/{row.id}/thumbnail").status_code == 404
        assert c.get(f"/api/images/{row.id - 1}/thumbnail").status_code == 200
    finally:
        link.unlink()
        api.scan(root, ws, labels_from_folders=True)


def test_edits_need_allow_edits_and_a_csrf_token(client, editor, served_ws):
    ws, _ = served_ws
    r = client.post("/api/labels", json={"ids": [1], "label": "x"})
    assert r.status_code == 403 and "--allow-edits" in r.json()["detail"]
    assert client.get("/label").status_code == 403
    bare = editor.post("/api/labels", json={"ids": [1], "label": "x"})
    assert bare.status_code == 403 and "CSRF" in bare.json()["detail"]
    token = editor.cookies["imgatlas_csrf"]
    page = editor.get("/clusters/0").text
    assert f'content="{token}"' in page and 'name="csrf"' in page  # the form carries it
    ok = editor.post("/api/labels", json={"ids": [1, 2], "label": "tomato"},
                     headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json() == {"labelled": 2, "label": "tomato"}
    assert editor.get("/api/images/1").json()["label"] == "tomato"
    with __import__("imgatlas").Workspace.open(ws) as w:
        assert w.user_labels()[1] == "tomato"
    r = editor.post("/api/clusters/0/name", json={"name": "<i>warm</i>"},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    assert "&lt;i&gt;warm&lt;/i&gt;" in editor.get("/clusters/0").text
    assert editor.post("/api/labels", json={"ids": [999999], "label": "x"},
                       headers={"X-CSRF-Token": token}).status_code == 404
    sugg = editor.get("/api/suggestions?n=4").json()["results"]
    assert len(sugg) == 4 and {"id", "path", "reason"} <= set(sugg[0])
    api.set_labels(ws, {1: None, 2: None})


def test_a_busy_workspace_is_409_and_reads_go_on(editor, served_ws):
    ws, _ = served_ws
    token = editor.cookies["imgatlas_csrf"]
    from imgatlas.store import Workspace

    with Workspace.open(ws, write=True, purpose="another writer"):
        r = editor.post("/api/labels", json={"ids": [1], "label": "x"},
                        headers={"X-CSRF-Token": token})
        assert r.status_code == 409
        assert editor.get("/api/images/1").status_code == 200  # reads never wait
        assert editor.get("/").status_code == 200


def test_a_token_is_required_when_set(served_ws, cache_dir):
    ws, _ = served_ws
    c = TestClient(create_app(ws, token="s3cret", cache_dir=cache_dir))
    assert c.get("/api/health").status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = c.get("/?token=s3cret")
    assert r.status_code == 200 and c.cookies["imgatlas_token"] == "s3cret"
    assert c.get("/api/health").status_code == 200  # the cookie carries it from now on
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_api_clusters_map_images_and_openapi(client):
    cl = client.get("/api/clusters").json()
    assert cl["run"] and sum(c["size"] for c in cl["clusters"]) == 38
    members = client.get("/api/clusters/0?page=1").json()
    assert members["size"] == len(members["members"]) or members["pages"] > 1
    m = client.get("/api/map").json()
    assert len(m["x"]) == 38 and m["method"] in ("pca", "umap")
    assert client.get("/api/images/1/neighbours?k=4").json()["results"]
    spec = client.get("/openapi.json").json()
    for route in ("/api/health", "/api/search", "/api/search/sketch", "/api/classify",
                  "/api/clusters", "/api/images/{image_id}",
                  "/api/images/{image_id}/thumbnail"):
        assert route in spec["paths"], route
    assert client.get("/clusters/99").status_code == 404
    assert client.get("/api/clusters/abc").status_code == 404


def test_cli_serve_refuses_an_open_host_without_printing_a_token(served_ws, monkeypatch,
                                                                 capsys, cache_dir):
    ws, _ = served_ws
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: seen.update(
        host=host, app=app))
    from imgatlas.cli import main

    assert main(["serve", "-w", str(ws), "--host", "0.0.0.0", "--cache-dir",
                 str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "?token=" in out and seen["host"] == "0.0.0.0"
    token = out.split("?token=")[1].split()[0]
    c = TestClient(seen["app"])
    assert c.get("/api/health").status_code == 401
    assert c.get(f"/api/health?token={token}").status_code == 200
    assert main(["serve", "-w", str(ws), "--cache-dir", str(cache_dir)]) == 0
    assert "?token=" not in capsys.readouterr().out


@pytest.mark.parametrize("path", ["/clusters/%C2%B2", "/api/clusters/%C2%B2",
                                  "/api/clusters/-%D9%A3"])
def test_cluster_ids_that_only_look_like_digits_are_404(client, path):
    assert client.get(path).status_code == 404



def test_the_overview_offers_the_granularities_k_auto_found(editor, monkeypatch):
    from imgatlas.serve import _pages

    fake = [{"k": 7, "by": ["the SSE elbow"], "evidence": "the kneedle <elbow>",
             "silhouette": 0.4}, {"k": 2, "by": ["the best silhouette"],
                                  "evidence": "best", "silhouette": 0.6}]
    monkeypatch.setattr(_pages, "k_candidates", lambda ws, run: fake)
    page = editor.get("/").text
    assert 'data-action="regroup" data-k="7" title="the kneedle &lt;elbow&gt;"' in page
    assert page.index('data-k="7"') < page.index("fewer groups")


def test_a_correction_offers_the_candidates_of_the_run_it_derives_from():
    from imgatlas.serve._views import k_candidates

    runs = {1: {"id": 1, "params": {}, "results": {"k_selection": {"candidates": [{"k": 5}]}}},
            2: {"id": 2, "params": {"derived_from": 1}, "results": {}},
            3: {"id": 3, "params": {}, "results": {"k_selection": None}}}

    class Ws:
        def get_run(self, i, kind):
            return runs[i]

    assert k_candidates(Ws(), runs[2]) == [{"k": 5}] and k_candidates(Ws(), runs[3]) == []
