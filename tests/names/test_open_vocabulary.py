"""Cluster names from the shipped open vocabulary, on a CLIP store (tiny random CLIP in the
test HF cache: the names are arbitrary, the mechanics are what is checked)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from conftest import ROOT
from imgatlas.names._vocabulary import COVERAGE, vocabulary


def test_the_vocabulary_is_large_licensed_and_clean():
    names, wnids, sha = vocabulary()
    assert len(names) > 5 * 1000 and len(set(names)) == len(names)
    assert all(w.startswith("n") and len(w) == 9 for w in wnids)
    raw = json.loads((ROOT / "src" / "imgatlas" / "names" / "vocabulary.json").read_text())
    assert "Princeton University" in raw["licence"]
    for rude in ("asshole", "bitch", "cunt", "prick", "whore"):
        assert rude not in names
    for word in ("dog", "dress", "car", "mountain", "pizza", "sofa"):
        assert word in names


def test_clusters_of_a_clip_store_are_named_from_it(tmp_path, hf_hub, monkeypatch):
    from imgatlas import api
    from imgatlas.backbones.hf._text import TextTower

    cache = tmp_path / "cache"
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache))
    photos = tmp_path / "photos"
    for f in sorted((ROOT / "samples" / "clothing").glob("*/*.jpg"))[::3]:
        (photos / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, photos / f.parent.name / f.name)
    ws = tmp_path / "ws"
    api.run(photos, ws, backbone="clip-vit-b32", k=3)
    names, _, sha = vocabulary()
    rows = api.clusters(ws)
    assert len(rows) == 3
    for r in rows:
        assert r["tags"] and all(t in names for t, _ in r["tags"])
        assert r["suggested_name"] is None or r["suggested_name"] in names
    # the concepts' vectors are made once per model and kept beside its export
    (kept,) = cache.glob(f"backbones/hf/*/*/vocabulary-{sha}.npy")
    calls = []
    real = TextTower.encode
    monkeypatch.setattr(TextTower, "encode", lambda self, t, **k: calls.append(t)
                        or real(self, t, **k))
    assert api.clusters(ws) == rows and not calls
    assert np.load(kept).shape[0] == len(names)


def test_a_name_needs_coverage():
    from imgatlas.names._vocabulary import name_clusters

    class Tower:  # concept vectors: the unit axes of the vocabulary's first concepts
        folder = None

    names, _, _ = vocabulary()
    rng = np.random.default_rng(0)
    V = rng.normal(size=(len(names), 64)).astype(np.float32)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    import imgatlas.names._vocabulary as voc

    orig = voc.concept_vectors
    voc.concept_vectors = lambda tower: V
    try:
        tight = V[2] + 0.05 * rng.normal(size=(10, 64)).astype(np.float32)
        spread = rng.normal(size=(10, 64)).astype(np.float32)
        out = name_clusters({0: tight, 1: spread}, Tower())
    finally:
        voc.concept_vectors = orig
    assert out[0].name == names[2] and out[0].coverage > COVERAGE
    assert out[1].name is None and out[1].tags
