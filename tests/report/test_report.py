"""The HTML report: contents, escaping, relative paths, caching, comparison, and a real
browser rendering it (headless Chromium through Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM, colour_groups, watched_page
from imgatlas import api
from imgatlas.cli import main

EVIL_FILE = "<img src=x onerror=alert(1)>"
EVIL_LABEL = 'blue"><svg onload=alert(2)>'
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), EVIL_LABEL: (30, 40, 220)}


@pytest.fixture()
def report_ws(tmp_path, cache_dir):
    """Three colour groups (one folder and one file with markup in their names), one broken
    file, embedded with the tiny test backbone and clustered with k=3."""
    root = colour_groups(tmp_path / "img", COLOURS, 12, shape=(40, 48), ext="jpg",
                         quality=90)
    shutil.copy(root / "red" / "0.jpg", root / "red" / f"{EVIL_FILE}.jpg")
    (root / "green" / "empty.jpg").write_bytes(b"")
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.cluster(ws, k=3)
    return ws


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)


def _check_refs_inside(html_file: Path, out: Path) -> list[str]:
    p = _Refs()
    p.feed(html_file.read_text(encoding="utf-8"))
    for ref in p.refs:
        if ref.startswith("#"):
            continue
        assert not re.match(r"^[a-z]+:", ref) and not ref.startswith("/"), ref
        target = (html_file.parent / ref.split("#")[0]).resolve()
        assert out.resolve() in target.parents, f"{ref} points outside the report"
        assert target.exists(), f"{ref} in {html_file.name} does not exist"
    return p.tags


def test_report_contents_escaping_and_relative_paths(report_ws, tmp_path):
    out = tmp_path / "rep"
    res = api.report(report_ws, out, map="pca")
    assert res["n_images"] == 37 and res["n_clusters"] == 3 and res["map"] == "pca"
    index = out / "index.html"
    html = index.read_text(encoding="utf-8")
    for section in ("summary", "sizes", "map", "clusters", "scores", "validation",
                    "outliers"):
        assert f'id="{section}"' in html, section
    assert "empty" in html and "skipped" in html.lower()  # the broken file and its status
    # every data string is escaped: no markup from a file or folder name survives
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert EVIL_FILE not in text and "<svg onload" not in text, page.name
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    data = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html,
                     re.S).group(1)
    assert "<" not in data and "\\u003cimg" in data
    mapped = json.loads(data)
    assert len(mapped["x"]) == 37 and any(EVIL_FILE in n for n in mapped["name"])
    assert EVIL_LABEL in mapped["labels"]
    # every src/href is relative and exists inside the report folder
    tags = _check_refs_inside(index, out)
    assert "canvas" in tags
    for page in (out / "clusters").glob("*.html"):
        _check_refs_inside(page, out)
    assert len(list((out / "assets" / "thumbs").glob("*.jpg"))) >= 36  # 2 files share content
    scores = api.evaluate(report_ws)
    assert f"{scores['acc']:.3f}" in html


def test_cluster_pages_are_paged(report_ws, tmp_path):
    from imgatlas.report import write_report
    from imgatlas.store import Workspace

    out = tmp_path / "rep"
    with Workspace.open(report_ws) as ws:
        write_report(ws, out, map_method="pca", per_page=5)
    sizes = api.runs(report_ws, "cluster")[-1]["results"]["sizes"]
    for c, n in sizes.items():
        pages = sorted((out / "clusters").glob(f"c{c}-*.html"))
        assert len(pages) == -(-n // 5)
        shown = sum(p.read_text().count('<figure class="thumb"') for p in pages)
        assert shown == n


def test_thumbnails_made_once(report_ws, tmp_path):
    api.report(report_ws, tmp_path / "a", map="pca")
    thumbs = sorted((report_ws / "thumbs").rglob("*.jpg"))
    stamps = [t.stat().st_mtime_ns for t in thumbs]
    api.report(report_ws, tmp_path / "b", map="pca")
    assert [t.stat().st_mtime_ns for t in sorted((report_ws / "thumbs").rglob("*.jpg"))] \
        == stamps
    with Image.open(thumbs[0]) as im:
        assert max(im.size) <= 96


def test_thumbnails_in_a_worker_process(report_ws, monkeypatch):
    """The pool path (used for large runs) gives the same files as the inline path, and a
    file that became unreadable after the scan gets no thumbnail instead of an error."""
    from imgatlas.report._thumbs import ThumbnailJob
    from imgatlas.store import Workspace

    monkeypatch.setattr(ThumbnailJob, "INLINE_BELOW", 0)
    monkeypatch.setattr(ThumbnailJob, "CHUNK", 7)
    with Workspace.open(report_ws) as ws:
        rows = ws.images()
        Path(os.fsdecode(rows[0].path)).write_bytes(b"not an image any more")
        got = ThumbnailJob(ws, rows).result()
    assert got[rows[0].id] is None
    made = [p for i, p in got.items() if i != rows[0].id]
    assert all(p is not None and p.stat().st_size > 0 for p in made)


def test_k_auto_run_shows_the_sweep(report_ws, tmp_path):
    res = api.cluster(report_ws, k="auto", k_range=(2, 8))
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    html = (out / "index.html").read_text()
    assert 'id="k"' in html and res["k_selection"]["reason"] in html
    assert (out / "assets" / "k_selection.png").stat().st_size > 1000
    rows = re.search(r'id="k">.*?<table class="grid">(.*?)</table>', html, re.S).group(1)
    assert rows.count("<tr") == 1 + 7 and rows.count('class="hl"') == 1
    cands = res["k_selection"]["candidates"]
    assert cands[0]["k"] == res["k_selection"]["chosen_k"]
    if len(cands) > 1:  # the other granularities, each with its evidence
        table = re.search(r'id="k-candidates">(.*?)</table>', html, re.S).group(1)
        assert table.count("<tr") == 1 + len(cands)
        assert all(f'<td class="n">{c["k"]}</td>' in table for c in cands)
    else:
        assert 'id="k-candidates"' not in html


def test_hierarchical_report_has_dendrogram_and_cophenetic_table(report_ws, tmp_path):
    api.cluster(report_ws, method="agglomerative", k=3, options={"linkage": "average"})
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    html = (out / "index.html").read_text()
    assert (out / "assets" / "dendrogram.png").stat().st_size > 1000
    table = re.search(r'<table class="grid narrow" id="cophenetic">(.*?)</table>', html,
                      re.S).group(1)
    for linkage in ("single", "complete", "average", "weighted", "centroid", "median", "ward"):
        assert linkage in table
    assert "average (this run)" in table


def test_density_run_shows_noise(report_ws, tmp_path):
    res = api.cluster(report_ws, method="dbscan", options={"eps": 0.02, "min_samples": 3})
    n_noise = res["sizes"].get(-1, 0)
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    html = (out / "index.html").read_text()
    if n_noise:
        assert f"Noise: {n_noise} images in no cluster" in html
    assert res["n_clusters"] >= 1


def test_compare_two_runs(report_ws, tmp_path):
    a = api.runs(report_ws, "cluster")[-1]["id"]
    b = api.cluster(report_ws, method="gmm", k=4, seed=1)["run_id"]
    res = api.report(report_ws, tmp_path / "rep", compare=(a, b))
    page = Path(res["index"])
    html = page.read_text()
    assert res["n_common"] == 37 and 0 <= res["ari"] <= 1
    assert f"Run {a} vs run {b}" in html and 'id="overlap"' in html
    # the overlap matrix counts every common image once
    cells = re.findall(r'<td class="n" style="--a: [0-9.]+">(\d+)</td>',
                       re.search(r'id="overlap">(.*?)</table>', html, re.S).group(1))
    assert sum(map(int, cells)) == 37
    _check_refs_inside(page, tmp_path / "rep")


def test_report_cli_errors_are_one_line(report_ws, tmp_path, capsys):
    assert main(["report", "-w", str(report_ws), "--run", "999", "--out",
                 str(tmp_path / "r")]) == 2  # ConfigError
    err = capsys.readouterr().err.strip()
    assert "no cluster run with id 999" in err and "\n" not in err
    assert main(["report", "-w", str(report_ws), "--out", str(report_ws)]) == 2
    assert "Refusing" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main(["report", "-w", str(report_ws), "--out", str(tmp_path / "a-file" / "r"),
                 "--map", "pca"]) == 1
    err = capsys.readouterr().err.strip()
    assert "Cannot write the report" in err and "\n" not in err
    assert main(["report", "-w", str(report_ws), "--out", str(tmp_path / "r"), "--map", "pca",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_clusters"] == 3


def test_run_reuses_the_workspace_and_writes_the_report(tmp_path, cache_dir):
    root = tmp_path / "img"
    for k, rgb in enumerate(((200, 20, 20), (20, 20, 200))):
        (root / f"c{k}").mkdir(parents=True)
        for j in range(6):
            a = np.full((24, 24, 3), rgb, np.uint8) + np.uint8(j)
            Image.fromarray(a).save(root / f"c{k}" / f"{j}.png")
    ws = tmp_path / "ws"
    first = api.run(root, ws, backbone="test_tiny", k=2, labels_from_folders=True,
                    cache_dir=cache_dir)
    assert Path(first["report"]["index"]).exists() and first["evaluation"]["acc"] == 1.0
    again = api.run(root, ws, backbone="test_tiny", k=2, labels_from_folders=True,
                    cache_dir=cache_dir)
    assert again["cluster"]["reused"] and again["cluster"]["run_id"] == \
        first["cluster"]["run_id"]
    assert again["embed"]["embedded"] == 0 and again["scan"]["unchanged"] == 12
    # the whole job inspects too (only what is new: nothing, the second time) ...
    assert first["inspection"]["run"]["n_compared"] == 12
    assert again["inspection"]["run"]["n_compared"] == 0
    assert "seconds" in again and "inspect" in again["seconds"]
    # ... unless asked not to
    lean = api.run(root, ws, backbone="test_tiny", k=2, make_inspection=False,
                   make_report=False, cache_dir=cache_dir)
    assert lean["inspection"] is None and "inspect" not in lean["seconds"]


def test_report_has_a_clean_up_section(tmp_path, cache_dir):
    from conftest import scene, write_scene

    root = tmp_path / "img"
    for k in range(10):
        write_scene(root / f"s{k}.jpg", seed=k, quality=90)
    shutil.copyfile(root / "s1.jpg", root / "s1-copy.jpg")
    Image.fromarray((scene(seed=30) * 0.05).astype(np.uint8)).save(root / "<b>dark.png")
    ws = tmp_path / "ws"
    res = api.run(root, ws, backbone="test_tiny", k=2, cache_dir=cache_dir)
    html = Path(res["report"]["index"]).read_text()
    section = html[html.index('<section id="cleanup">'):]
    section = section[:section.index("</section>")]
    assert "near-duplicate groups" in section and 'id="flag-dark"' in section
    assert "<b>dark" not in section and "&lt;b&gt;dark.png" in section
    drop = re.findall(r"<tr><td><code>(\w+)</code></td><td class=\"n\">(\d+)</td></tr>",
                      section)
    assert dict(drop) == {"duplicates": "1", "dark": "1"}
    assert section.count('class="dupgroup"') == 1
    thumbs = re.findall(r'src="(assets/thumbs/[^"]+)"', section)
    assert thumbs and all((Path(res["report"]["out"]) / t).exists() for t in thumbs)


# -- in a real browser -------------------------------------------------------------------------


def test_report_in_headless_chromium(report_ws, tmp_path):
    """Open the report as a person would; fail on any console error."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package "
                    "(make test does so when it runs as root)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e .[dev])")
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    data = json.loads(re.search(r'id="map-data">(.*?)</script>',
                                (out / "index.html").read_text(), re.S).group(1))
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser, page = watched_page(p, problems)
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.goto((out / "index.html").as_uri(), wait_until="load")

        assert page.locator("#mapcanvas").get_attribute("data-points") == "37"
        assert page.locator(".cluster").count() == 3
        assert page.locator("#clusters .montage img").count() >= 3 * 8
        assert page.locator("#confusion tr").count() == 4  # header + 3 classes
        assert page.locator("#composition tr").count() == 4
        assert page.locator(".legend span").count() == 3
        assert page.get_by_text(EVIL_FILE, exact=False).count() >= 1  # shown as text

        # hover the first point: the tooltip shows its name; click: it is selected
        page.locator("#mapcanvas").scroll_into_view_if_needed()
        box = page.locator("#mapcanvas").bounding_box()
        scale = box["width"] / 800
        x = box["x"] + (12 + data["x"][0] * (800 - 24)) * scale
        y = box["y"] + (12 + (1 - data["y"][0]) * (560 - 24)) * scale
        page.mouse.move(x, y)
        assert page.locator("#maptip").is_visible()
        page.mouse.click(x, y)
        selected = page.locator("#mapsel").get_attribute("data-selected")
        assert selected is not None and int(selected) in data["id"]
        page.locator("input[value=label]").check()
        assert page.locator(".legend span").first.inner_text().startswith(
            sorted(data["labels"])[0])

        # every montage image actually loads (scroll so lazy images are fetched)
        page.locator("#outliers").scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle")
        broken = page.evaluate("Array.from(document.querySelectorAll('#clusters img'))"
                               ".filter(i => i.complete && i.naturalWidth === 0).length")
        assert broken == 0
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    assert not problems, problems


def test_report_shows_the_latest_retrieval_evaluation(report_ws, tmp_path):
    ev = api.evaluate_retrieval(report_ws, ["float", "pca:8"], n_queries=20)
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    html = (out / "index.html").read_text()
    table = re.search(r'id="retrieval-table">(.*?)</table>', html, re.S).group(1)
    for spec, m in ev["codes"].items():
        assert f"<code>{spec}</code>" in table and f"{m['map']:.3f}" in table
    assert (out / "assets" / "pr_curves.png").stat().st_size > 1000


def test_report_has_a_page_per_trained_model(report_ws, tmp_path):
    """Learning curves, confusion matrix, per-class table, confident mistakes, suspected
    label errors; names from the data escaped as everywhere."""
    api.train(report_ws, name="colours")
    out = tmp_path / "rep"
    api.report(report_ws, out, map="pca")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="models"' in index and 'href="models/colours.html"' in index
    page = out / "models" / "colours.html"
    html = page.read_text(encoding="utf-8")
    for section in ("model", "confusion", "per-class", "mistakes", "suspects"):
        assert f'id="{section}"' in html, section
    # the head chosen by cross-validation and refitted on all labels: its expected accuracy
    assert "Expected accuracy" in html and "cross-validated accuracy" in html
    assert EVIL_LABEL not in html and "&lt;svg onload=alert(2)&gt;" in html  # a class name
    _check_refs_inside(page, out)
    assert (out / "assets" / "model-colours-confusion.png").is_file()


def test_the_fuzzy_graph_is_umaps():
    """The map's fuzzy graph, built in NumPy (no numba compilation), is UMAP's own."""
    import faiss
    from umap.umap_ import fuzzy_simplicial_set

    from imgatlas.report._layout import fuzzy_graph

    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(c, 1, (60, 8)) for c in rng.normal(0, 4, (4, 8))]
                       ).astype(np.float32)
    Z[5] = Z[4]  # a duplicate: a zero distance besides the point itself
    index = faiss.IndexFlatL2(8)
    index.add(Z)
    d2, nn = index.search(Z, 10)
    d = np.sqrt(np.maximum(d2, 0))
    ours = fuzzy_graph(nn, d).toarray()
    theirs = fuzzy_simplicial_set(Z, 10, np.random.RandomState(0), "euclidean",
                                  knn_indices=nn, knn_dists=d)[0].toarray()
    assert np.abs(ours - theirs).max() < 1e-5


def test_the_cached_layout_kernel_lays_out_as_umaps_own():
    """The map's epoch kernel compiled through numba's disk cache gives the very layout
    umap-learn's own kernel gives."""
    from umap import layouts

    from imgatlas.report import _layout

    rng = np.random.default_rng(1)
    Z = np.concatenate([rng.normal(c, 1, (50, 8)) for c in rng.normal(0, 4, (3, 8))]
                       ).astype(np.float32)
    _layout.use_cached_layout_kernel()
    cached = layouts._nb_optimize_layout_euclidean_single_epoch
    if _layout._UMAP_KERNEL is None or cached is _layout._UMAP_KERNEL:
        pytest.skip("no writable numba cache here: umap-learn's kernel is used as it is")
    ours = _layout._umap_2d(Z, 0)
    try:
        layouts._nb_optimize_layout_euclidean_single_epoch = _layout._UMAP_KERNEL
        theirs = _layout._umap_2d(Z, 0)
    finally:
        layouts._nb_optimize_layout_euclidean_single_epoch = cached
    np.testing.assert_array_equal(ours, theirs)


def test_a_sampled_silhouette_says_so(report_ws, tmp_path, monkeypatch):
    from imgatlas.evaluate import internal

    out = tmp_path / "rep0"
    api.report(report_ws, out, map="pca")
    assert "over 37 images" in (out / "index.html").read_text(encoding="utf-8")
    monkeypatch.setattr(internal, "SILHOUETTE_SAMPLE", 20)
    res = api.cluster(report_ws, k=3, seed=1)
    assert res["internal"]["silhouette_sampled"]
    out = tmp_path / "rep"
    api.report(report_ws, out, run=res["run_id"], map="pca")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "on a seeded sample of 20 of the 37 images" in html


def test_larger_maps_take_fewer_epochs(monkeypatch):
    """From MAP_FEWER_EPOCHS_FROM images the layout runs half UMAP's 200 epochs."""
    import umap.umap_

    from imgatlas.report import _layout

    assert _layout.map_epochs(_layout.MAP_FEWER_EPOCHS_FROM - 1) == 200
    assert _layout.map_epochs(_layout.MAP_FEWER_EPOCHS_FROM) == 100
    seen = []
    real = umap.umap_.simplicial_set_embedding

    def spy(*args, **kw):
        seen.append(args[8])
        return real(*args, **kw)

    monkeypatch.setattr(umap.umap_, "simplicial_set_embedding", spy)
    Z = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    _layout._umap_2d(Z, 0)
    monkeypatch.setattr(_layout, "MAP_FEWER_EPOCHS_FROM", 50)
    _layout._umap_2d(Z, 0)
    assert seen == [200, 100]


def test_figures_drawn_in_the_thumbnail_process(report_ws, tmp_path, monkeypatch):
    """With a thumbnail process, the k sweep and silhouette figures are drawn there: the
    same files as drawn inline, and the report names them."""
    from imgatlas.report._thumbs import ThumbnailJob

    api.cluster(report_ws, k="auto", k_range=(2, 6))
    inline = tmp_path / "inline"
    api.report(report_ws, inline, map="pca")
    shutil.rmtree(report_ws / "thumbs")
    monkeypatch.setattr(ThumbnailJob, "INLINE_BELOW", 0)
    calls = []
    real = ThumbnailJob.first_result

    def spy(self):
        got = real(self)
        calls.append(got)
        return got

    monkeypatch.setattr(ThumbnailJob, "first_result", spy)
    child = tmp_path / "child"
    api.report(report_ws, child, map="pca")
    assert calls == [{"k_selection": "k_selection.png", "silhouette": "silhouette.png"}]
    for name in calls[0].values():
        assert (child / "assets" / name).stat().st_size > 1000
        assert f"assets/{name}" in (child / "index.html").read_text()
        assert (inline / "assets" / name).exists()


def _fails() -> None:
    raise RuntimeError("drawing failed")


def test_a_failed_job_in_the_thumbnail_process_is_done_by_the_caller(report_ws, monkeypatch):
    from imgatlas.report._thumbs import ThumbnailJob
    from imgatlas.store import Workspace

    with Workspace.open(report_ws) as ws:
        rows = ws.images()
        assert ThumbnailJob(ws, rows, first=(_fails, ())).first_result() is None  # inline
        shutil.rmtree(report_ws / "thumbs")
        monkeypatch.setattr(ThumbnailJob, "INLINE_BELOW", 0)
        job = ThumbnailJob(ws, rows, first=(_fails, ()))
        assert job.first is not None and job.first_result() is None
        assert all(p is not None for p in job.result().values())


def test_the_map_graph_warns_about_nothing_on_a_small_collection():
    """28 images, six of them the same picture: their bandwidth search shrinks towards 0,
    and exp() of the masked-out side overflowed, so numpy printed "overflow encountered in
    exp" to the user's terminal."""
    import warnings

    from sklearn.neighbors import NearestNeighbors

    from imgatlas.report._layout import fuzzy_graph

    rng = np.random.default_rng(0)
    X = np.vstack([np.tile(rng.normal(0, 1, (1, 8)), (6, 1)), rng.normal(0, 1, (22, 8))])
    dist, nn = NearestNeighbors(n_neighbors=15).fit(X).kneighbors(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        G = fuzzy_graph(nn, dist)
    assert G.shape == (28, 28) and np.isfinite(G.data).all()
