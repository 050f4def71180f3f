"""A report of a collection too large to show whole: a sampled map, each cluster's
closest members within a thumbnail budget, and saying so."""

from __future__ import annotations

import json
import re

import imgatlas.report._report as rep
from conftest import colour_groups
from imgatlas import api
from imgatlas.store import Workspace


def test_large_run_report_shows_a_part_and_says_so(tmp_path, cache_dir, monkeypatch):
    root = colour_groups(tmp_path / "img", {"red": (220, 30, 30), "green": (30, 200, 40),
                                            "blue": (30, 40, 220)}, 30)
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    run = api.cluster(ws, reduce="l2", k=3, sample_size=40)  # as a million-image run would
    monkeypatch.setattr(rep, "FULL_MAX", 50)
    monkeypatch.setattr(rep, "MAP_SAMPLE", 25)
    monkeypatch.setattr(rep, "THUMBS", 12)
    with Workspace.open(ws) as w:
        res = rep.write_report(w, tmp_path / "out", run["run_id"], per_page=4)
    index = (tmp_path / "out" / "index.html").read_text()
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', index, re.S).group(1))
    assert len(data["id"]) == 25 and "Map of a sample of 25 of the 90 images" in index
    thumbs = list((tmp_path / "out" / "assets" / "thumbs").iterdir())
    assert len(thumbs) < 90
    pages = sorted((tmp_path / "out" / "clusters").glob("c*.html"))
    assert len(pages) == 3  # 12 thumbnails shared by 3 clusters: one page of 4 each
    page = pages[0].read_text()
    assert "closest to the centre" in page and page.count("<img") <= 4 + 2
    assert res["n_images"] == 90
