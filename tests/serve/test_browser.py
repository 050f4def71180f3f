"""The app as a person uses it, in Debian's Chromium (Playwright): the overview, a cluster,
rename it (edits on), upload an image and see results, draw on the canvas and see results,
the map; no console errors, no dialog (an alert() would be an XSS); screenshots saved."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from conftest import CHROMIUM, ROOT, watched_page


@pytest.fixture(scope="module")
def live_url(served_ws, cache_dir):
    uvicorn = pytest.importorskip("uvicorn")
    from imgatlas.serve import create_app

    ws, _ = served_ws
    app = create_app(ws, model=ws / "models" / "m", allow_edits=True, cache_dir=cache_dir)
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_the_app_in_a_real_browser(live_url, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package "
                    "(make test does so when it runs as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect  # waits run in Playwright's own world: the CSP forbids eval
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser, page = watched_page(p, problems)

        page.goto(live_url + "/", wait_until="networkidle")
        assert page.locator("article.card").count() == 3
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        # a cluster: rename it
        page.locator("article.card h3 a").first.click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".montage figure").count() >= 1
        page.fill('#rename input[name="name"]', '<b>my "group"</b>')
        page.click("#rename button")
        expect(page.locator("#rename .status")).to_have_text("saved")
        assert page.locator("h1 .cluster-name").inner_text() == '<b>my "group"</b>'
        page.reload(wait_until="networkidle")
        assert page.locator("h1 .cluster-name").inner_text() == '<b>my "group"</b>'

        # search by upload
        page.goto(live_url + "/search", wait_until="networkidle")
        sample = next((ROOT / "samples" / "clothing" / "hat").iterdir())
        page.set_input_files('#upload input[type="file"]', str(sample))
        expect(page.locator("#results figure")).to_have_count(12)
        assert page.locator("#prediction").is_visible()
        page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

        # search by drawing: a circle on the canvas
        canvas = page.locator("#canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx + 100, cy)
        page.mouse.down()
        import math

        for t in range(0, 361, 12):
            a = math.radians(t)
            page.mouse.move(cx + 100 * math.cos(a), cy + 100 * math.sin(a))
        page.mouse.up()
        page.click("#draw-search")
        expect(page.locator("#search-status")).to_contain_text("results")
        expect(page.locator("#results figure")).to_have_count(12)
        page.click("#undo")
        page.click("#draw-search")
        expect(page.locator("#search-status")).to_contain_text("Draw something first")
        page.screenshot(path=str(tmp_path / "drawing.png"), full_page=True)

        # the map: points drawn, hover shows the tooltip
        page.goto(live_url + "/map", wait_until="networkidle")
        expect(page.locator("#map-status")).to_contain_text("images")
        box = page.locator("#map").bounding_box()
        for dx in range(0, int(box["width"]), 6):  # sweep until a point shows its tooltip
            page.mouse.move(box["x"] + dx, box["y"] + box["height"] / 2)
            if page.locator("#tip").is_visible():
                break
        page.screenshot(path=str(tmp_path / "map.png"))
        browser.close()
    assert (tmp_path / "search.png").stat().st_size > 10_000
    assert not problems, problems
