"""Corrections from the web app: through the JSON API (TestClient) and as a person does
them in Chromium (Playwright): select, move, merge, split, set aside, fewer/more groups,
undo; they survive a restart of the app."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

from conftest import CHROMIUM, watched_page
from imgatlas import api

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from imgatlas.serve import create_app  # noqa: E402


@pytest.fixture()
def own_ws(served_ws, tmp_path):
    """A copy of the served workspace: edits here leave the other tests' one alone."""
    ws, _ = served_ws
    dst = tmp_path / "ws"
    shutil.copytree(ws, dst)
    return dst


def _editor(ws, cache_dir, **kw):
    c = TestClient(create_app(ws, allow_edits=True, cache_dir=cache_dir, **kw))
    c.get("/")  # the page sets the CSRF cookie
    return c


def _post(c, path, body):
    return c.post(path, json=body, headers={"X-CSRF-Token": c.cookies.get("imgatlas_csrf")})


def test_edits_through_the_api_and_undo(own_ws, cache_dir):
    c = _editor(own_ws, cache_dir)
    first = api.runs(own_ws, "cluster")[-1]["id"]
    clusters = c.get("/api/clusters").json()["clusters"]
    member = c.get(f"/api/clusters/{clusters[0]['id']}").json()["members"][0]["id"]
    r = _post(c, "/api/edits/move", {"ids": [member], "to": "new"})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["derived_from"] == first and moved["edit"]["op"] == "move"
    assert c.get("/api/clusters").json()["run"] == moved["run"]  # the app shows the new run
    r = _post(c, "/api/edits/merge", {"clusters": [clusters[0]["id"], clusters[1]["id"]]})
    assert r.status_code == 200
    r = _post(c, "/api/edits/split", {"cluster": clusters[0]["id"], "k": 2})
    assert r.status_code == 200
    r = _post(c, "/api/edits/set-aside", {"ids": [member]})
    assert r.status_code == 200
    r = _post(c, "/api/edits/regroup", {"k": 2})
    assert r.status_code == 200 and len([c for c in r.json()["sizes"] if int(c) >= 0]) == 2
    for _ in range(5):
        assert _post(c, "/api/edits/undo", {}).status_code == 200
    assert c.get("/api/clusters").json()["run"] == first
    assert _post(c, "/api/edits/undo", {}).status_code == 400  # nothing left to undo
    # bad requests are refused, one line each
    assert _post(c, "/api/edits/merge", {"clusters": [0]}).status_code == 422
    assert _post(c, "/api/edits/move", {"ids": [999999], "to": "new"}).status_code == 400
    assert _post(c, "/api/edits/split", {"cluster": 99, "k": 2}).status_code == 400


def test_edits_need_allow_edits_and_the_csrf_token(own_ws, cache_dir):
    viewer = TestClient(create_app(own_ws, cache_dir=cache_dir))
    viewer.get("/")
    assert _post(viewer, "/api/edits/undo", {}).status_code == 403
    editor = _editor(own_ws, cache_dir)
    r = editor.post("/api/edits/merge", json={"clusters": [0, 1]})  # no token header
    assert r.status_code == 403
    assert len(api.runs(own_ws, "cluster")) == 1


def test_an_app_started_on_a_fixed_run_follows_its_corrections(own_ws, cache_dir):
    first = api.runs(own_ws, "cluster")[-1]["id"]
    c = _editor(own_ws, cache_dir, run=first)
    r = _post(c, "/api/edits/merge", {"clusters": [0, 1]})
    assert c.get("/api/clusters").json()["run"] == r.json()["run"]
    _post(c, "/api/edits/undo", {})
    assert c.get("/api/clusters").json()["run"] == first


@pytest.fixture()
def live(own_ws, cache_dir):
    uvicorn = pytest.importorskip("uvicorn")
    servers = []

    def start():
        app = create_app(own_ws, allow_edits=True, cache_dir=cache_dir)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def stop():
        server, thread = servers.pop()
        server.should_exit = True
        thread.join(5)

    yield start, stop
    while servers:
        stop()


def test_corrections_in_a_real_browser(live, own_ws, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    start, stop = live
    url = start()
    first = api.runs(own_ws, "cluster")[-1]["id"]
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser, page = watched_page(p, problems)
        page.goto(url + "/clusters/0", wait_until="networkidle")
        n0 = page.locator(".montage figure").count()
        # select two images, move them to a new cluster
        page.locator('input[name="pick"]').nth(0).check()
        page.locator('input[name="pick"]').nth(1).check()
        page.select_option('#move-selection select[name="to"]', "new")
        page.click('#move-selection button[type="submit"]')
        page.wait_for_load_state("networkidle")
        expect(page.locator(".montage figure")).to_have_count(n0 - 2)
        # merge this cluster into another
        page.click('#cluster-actions button[data-action="merge"]')
        page.wait_for_url("**/clusters/*")
        page.wait_for_load_state("networkidle")
        # fewer groups from the overview, then undo
        page.goto(url + "/", wait_until="networkidle")
        cards = page.locator("article.card").count()
        page.click('button[data-action="regroup"]:has-text("fewer")')
        page.wait_for_load_state("networkidle")
        expect(page.locator("article.card")).to_have_count(cards - 1)
        page.click('button[data-action="undo"]')
        page.wait_for_load_state("networkidle")
        expect(page.locator("article.card")).to_have_count(cards)
        page.screenshot(path=str(tmp_path / "edits.png"), full_page=True)
        browser.close()
    assert problems == []
    runs = api.runs(own_ws, "cluster")
    ops = [r["params"].get("edit", {}).get("op") for r in runs if r["id"] != first]
    assert ops == ["move", "merge", "regroup"] and runs[-1]["status"] == "undone"
    # a restart shows what was left: the merge
    stop()
    c = TestClient(create_app(own_ws, cache_dir=None))
    assert c.get("/api/clusters").json()["run"] == runs[-2]["id"]
