"""The taxonomy, tags, suggested names and text search."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_data
from imgatlas import api
from imgatlas.errors import ConfigError
from imgatlas.names import suggest, taxonomy
from imgatlas.names._tags import score


def cls(name: str) -> int:
    return taxonomy().display.index(name)


def test_the_shipped_taxonomy():
    t = taxonomy()
    assert len(t.classes) == 1000 and t.classes[0] == "n01440764"  # tench, in class order
    dog = t.lookup("dog")
    assert t.nodes[dog[0]].name == "dog" and len(t.under[dog[0]]) == 118
    assert t.lookup("dogs") == dog and t.lookup("Domestic  Dog") == dog  # plural, synonym
    assert t.lookup("geese")  # an irregular plural
    assert t.lookup("golden retriever") == [t.classes[cls("Golden Retriever")]]
    assert t.lookup("doggo") == [] and "dog" in t.close_words("dgo")
    assert not t.nameable("n00001740")  # entity
    assert not t.nameable(t.lookup("placental")[0])  # a taxonomist's word over many classes
    assert t.nameable(dog[0]) and t.nameable(t.lookup("camel")[0])


def _members(*spec: tuple[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Members whose top class is the given one at probability 0.8."""
    rows = [cls(name) for name, n in spec for _ in range(n)]
    classes = np.zeros((len(rows), 10), np.int64)
    probs = np.zeros((len(rows), 10), np.float32)
    classes[:, 0], probs[:, 0] = rows, 0.8
    classes[:, 1:] = np.arange(1, 10) + 500  # some unrelated leftovers
    probs[:, 1:] = 0.2 / 9
    return classes, probs


def test_names_are_the_majority_class_or_what_covers_the_members():
    assert suggest(*_members(("Beagle", 9), ("tench", 1))).name == "Beagle"
    hounds = suggest(*_members(("Beagle", 5), ("Bluetick Coonhound", 5)))
    assert hounds.name == "hound" and hounds.coverage == 1.0
    # their common node, carnivore, is a taxonomist's word: not a name
    assert suggest(*_members(("Beagle", 4), ("Siamese cat", 3), ("tabby cat", 3))).name \
        not in ("carnivore", "placental")
    mixed = suggest(*_members(("Beagle", 3), ("tench", 3), ("sports car", 3), ("tram", 3)))
    assert mixed.name is None  # no consensus: tags, no name rather than a wrong one
    assert {t for t, _ in mixed.tags} == {"Beagle", "tench", "sports car", "tram"}


def test_scores_from_features_through_the_head():
    rng = np.random.default_rng(0)
    W, b = rng.normal(0, 1, (1000, 16)).astype(np.float32), np.zeros(1000, np.float32)
    X = rng.normal(0, 1, (5, 16)).astype(np.float32)
    classes, probs = score(X, (W, b), k=10)
    logits = X @ W.T
    assert (classes[:, 0] == logits.argmax(1)).all()
    assert np.all(np.diff(probs, axis=1) <= 0)  # most likely first
    full = np.exp(logits - logits.max(1, keepdims=True))
    full /= full.sum(1, keepdims=True)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    assert np.array_equal(classes, expected)
    assert np.allclose(probs, np.take_along_axis(full, expected, axis=1), atol=1e-6)


@pytest.fixture(scope="module")
def imagenette(tmp_path_factory, cache_dir):
    """Three Imagenette classes (real photos, ImageNet classes), embedded and clustered."""
    import shutil

    src = shared_data("imagenette")
    root = tmp_path_factory.mktemp("names") / "img"
    for c in ("english_springer", "golf_ball", "tench"):
        (root / c).mkdir(parents=True)
        for p in sorted((src / c).iterdir())[:12]:
            shutil.copyfile(p, root / c / p.name)
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    run = api.cluster(ws, k=3)["run_id"]
    return ws, run


def test_clusters_of_imagenet_classes_name_themselves(imagenette):
    ws, run = imagenette
    res = api.clusters(ws, run)
    got = {r["suggested_name"] for r in res}
    assert got == {"English Springer Spaniel", "golf ball", "tench"}
    for r in res:
        assert r["name"] is None and r["tags"] and 0 < r["tags"][0][1] <= 1
    c = res[0]["cluster"]
    assert api.name_cluster(ws, run, c, accept=True)["name"] == res[0]["suggested_name"]
    again = {r["cluster"]: r for r in api.clusters(ws, run)}
    assert again[c]["name"] == res[0]["suggested_name"]
    with pytest.raises(ConfigError, match="no suggested name to accept"):
        api.name_cluster(ws, run, c, accept=True)  # named already


def test_text_search_by_class_and_by_group(imagenette):
    ws, _ = imagenette
    dogs = api.search(ws, text="dogs", k=8)[0]
    assert [h["label"] for h in dogs["results"]] == ["english_springer"] * 8
    assert dogs["matched"][0]["name"] == "dog"
    assert all(0 < h["similarity"] <= 1 for h in dogs["results"])
    fish = api.search(ws, text="tench", k=5)[0]["results"]
    assert {h["label"] for h in fish} == {"tench"}
    with pytest.raises(ConfigError, match="close: "):
        api.search(ws, text="tenhc")


def test_features_without_classes_say_so(tmp_path, cache_dir):
    from conftest import write_scene

    for k in range(4):
        write_scene(tmp_path / "p" / f"{k}.jpg", seed=k)
    api.scan(tmp_path / "p", tmp_path / "ws")
    api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    run = api.cluster(tmp_path / "ws", k=2)["run_id"]
    rows = api.clusters(tmp_path / "ws", run)
    assert all(r["suggested_name"] is None and r["tags"] == [] for r in rows)
    with pytest.raises(ConfigError, match="no ImageNet classes"):
        api.search(tmp_path / "ws", text="dog")


def test_the_web_app_accepts_a_name_in_one_click_and_searches_by_word(imagenette, cache_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from imgatlas.serve import create_app

    ws, run = imagenette
    c = TestClient(create_app(ws, allow_edits=True, cache_dir=cache_dir))
    page = c.get("/").text
    assert "suggested" in page and 'data-action="accept"' in page
    unnamed = [r for r in api.clusters(ws, run) if r["name"] is None]
    target = unnamed[0]
    r = c.post(f"/api/clusters/{target['cluster']}/accept",
               headers={"X-CSRF-Token": c.cookies.get("imgatlas_csrf")})
    assert r.status_code == 200 and r.json()["name"] == target["suggested_name"]
    named = {x["cluster"]: x["name"] for x in api.clusters(ws, run)}
    assert named[target["cluster"]] == target["suggested_name"]
    hits = c.get("/api/search/text", params={"q": "dog", "k": 5}).json()["results"]
    assert [h["label"] for h in hits] == ["english_springer"] * 5
    bad = c.get("/api/search/text", params={"q": "dgo"})
    assert bad.status_code == 400 and "close" in bad.json()["detail"]
    image = c.get(f"/api/images/{hits[0]['id']}").json()
    assert image["tags"][0]["tag"] == "English Springer Spaniel"


def test_the_label_page_starts_from_the_cluster_names(imagenette, cache_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from imgatlas.serve import create_app

    ws, run = imagenette
    c = TestClient(create_app(ws, allow_edits=True, cache_dir=cache_dir))
    picks = c.get("/api/suggestions", params={"n": 3}).json()["results"]
    names = {r["name"] or r["suggested_name"] for r in api.clusters(ws, run)}
    assert picks and all(p["suggested_label"] in names for p in picks)


def test_tags_recorded_and_scored_now_agree(imagenette):
    from imgatlas.names import image_tags
    from imgatlas.store import Workspace

    ws, _ = imagenette
    with Workspace.open(ws) as w:
        store = w.pick_store(None)
        ids = store.done_ids()
        recorded = image_tags(w, store, ids[::-1])  # any order in, ascending out
        w.tag_arrays = lambda key, wanted=None: (np.empty(0, np.int64),) * 3  # none recorded
        scored = image_tags(w, store, ids[::-1])
    assert np.array_equal(recorded[0], ids) and np.array_equal(scored[0], ids)
    assert np.array_equal(recorded[1], scored[1])
    assert np.allclose(recorded[2], scored[2], atol=1e-6)


def test_large_clusters_are_named_from_a_seeded_sample(imagenette, monkeypatch):
    import imgatlas.names._clusters as nc
    from imgatlas.names import cluster_names
    from imgatlas.store import Workspace

    ws, run = imagenette
    with Workspace.open(ws) as w:
        whole = cluster_names(w, run)
        seen: list[int] = []
        real = nc.image_tags
        monkeypatch.setattr(nc, "image_tags", lambda w_, s, ids: seen.append(len(ids))
                            or real(w_, s, ids))
        monkeypatch.setattr(nc, "NAME_SAMPLE", 6)
        sampled = cluster_names(w, run)
        again = cluster_names(w, run, w.assignments(run))
    assert seen[0] == 6 * len(whole) < sum(n.size for n in whole.values())
    # twelve photos of one class each: six of them name it as all twelve do; sizes whole
    assert {c: (n.suggested_name, n.size) for c, n in sampled.items()} == {
        c: (n.suggested_name, n.size) for c, n in whole.items()}
    assert again == sampled  # the same sample every time
