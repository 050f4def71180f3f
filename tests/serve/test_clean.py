"""The web app's clean-up views: the clean page, cluster filters, image badges, and
similarities as a person reads them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import scene, write_scene
from imgatlas import api

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from imgatlas.serve import create_app  # noqa: E402

EVIL = '<img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def inspected_ws(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("clean") / "photos"
    for k in range(12):
        write_scene(root / f"s{k}.jpg", seed=k, quality=90)
    shutil.copyfile(root / "s0.jpg", root / "s0-copy.jpg")
    Image.fromarray((scene(seed=40) * 0.05).astype(np.uint8)).save(root / f"{EVIL}.jpg")
    ws = root.parent / "ws"
    api.scan(root, ws)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.inspect(ws)
    api.cluster(ws, k=2)
    return ws


@pytest.fixture(scope="module")
def client(inspected_ws, cache_dir):
    return TestClient(create_app(inspected_ws, cache_dir=cache_dir))


def test_clean_page_shows_groups_and_flags_escaped(client):
    r = client.get("/clean")
    assert r.status_code == 200
    html = r.text
    assert "Group 1" in html and "same bytes" in html
    assert 'id="flag-dark"' in html
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    data = client.get("/api/inspection").json()
    assert data["counts"]["near_duplicate_groups"] == 1 and data["counts"]["dark"] == 1
    g = data["groups"][0]
    assert {g["keep"]["path"].rsplit("/", 1)[1]} | {
        c["path"].rsplit("/", 1)[1] for c in g["copies"]} == {"s0.jpg", "s0-copy.jpg"}


def test_image_page_badges(client, inspected_ws):
    rows = api.load_features(inspected_ws)[2]
    copy = next(r["id"] for r in rows if r["path"].endswith("s0-copy.jpg"))
    keep = next(r["id"] for r in rows if r["path"].endswith("/s0.jpg"))
    dark = next(r["id"] for r in rows if "onerror" in r["path"])
    meta = client.get(f"/api/images/{copy}").json()
    nd = meta["near_duplicates"]
    roles = {nd["role"], client.get(f"/api/images/{keep}").json()["near_duplicates"]["role"]}
    assert roles == {"keep", "copy"}
    page = client.get(f"/images/{copy}").text
    assert "near-duplicate" in page and 'href="/clean#group-1"' in page
    dark_meta = client.get(f"/api/images/{dark}").json()
    assert [f["flag"] for f in dark_meta["flags"]] == ["dark"]
    assert "badge flag" in client.get(f"/images/{dark}").text


def test_cluster_pages_hide_what_is_asked(client, inspected_ws):
    runs = api.runs(inspected_ws, "cluster")
    sizes = runs[-1]["results"]["sizes"]
    total = 0
    for c in sizes:
        page = client.get(f"/clusters/{c}?hide=duplicates&hide=dark").text
        shown = page.count('class="thumb"')
        total += shown
        assert 'name="hide" value="duplicates" checked' in page
    assert total == sum(sizes.values()) - 2  # one copy, one dark picture
    assert client.get("/clusters/0?hide=nonsense").status_code == 400


def test_similarities_read_as_a_person_expects(client, inspected_ws):
    rows = api.load_features(inspected_ws)[2]
    hits = client.get(f"/api/images/{rows[3]['id']}/neighbours").json()["results"]
    sims = [h["similarity"] for h in hits]
    assert sims and all(0 <= s <= 1 for s in sims)
    assert sims == sorted(sims, reverse=True)  # the order a person reads is the numbers'
    api.build_index(inspected_ws, codes="itq:8")  # a coarse code: its order is re-ranked
    res = api.search(inspected_ws, ids=[rows[3]["id"]], k=5)[0]["results"]
    assert [h["similarity"] for h in res] == sorted((h["similarity"] for h in res),
                                                    reverse=True)


def test_a_workspace_never_inspected(tmp_path, cache_dir):
    for k in range(4):
        write_scene(tmp_path / "p" / f"{k}.jpg", seed=k)
    api.scan(tmp_path / "p", tmp_path / "ws")
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    api.cluster(tmp_path / "ws", k=2)
    c = TestClient(create_app(tmp_path / "ws", cache_dir=cache_dir))
    assert "Not inspected yet" in c.get("/clean").text
    assert 'name="hide"' not in c.get("/clusters/0").text
    assert c.get("/api/images/1").json()["flags"] == []
