"""The line->photo map: what it learns, how it centres the sketch domain, what it stores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import normalize

from imgatlas.sketch import LineToPhotoMap
from imgatlas.sketch._map import domain_shift, shipped_shift


def _two_views(n: int = 400, d: int = 32, seed: int = 0):
    """Photos of 8 kinds and their 'line maps': a fixed rotation of the photo features plus
    a constant domain offset and noise (what a line detector + backbone does, crudely)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d)) * 2
    kind = rng.integers(0, 8, n)
    P = centres[kind] + rng.normal(size=(n, d)) + 5.0  # an offset of the photo domain
    R, _ = np.linalg.qr(rng.normal(size=(d, d)))
    offset = rng.normal(size=d) * 4
    L = P @ R + offset + rng.normal(size=(n, d)) * 0.3
    return P, L, kind, R, offset


def test_map_sends_line_maps_to_their_photos():
    P, L, kind, _, _ = _two_views()
    m = LineToPhotoMap(alpha=1.0).fit(L, P)
    Q, G = m.transform(L), m.photos(P)
    assert Q.dtype == np.float32 and np.allclose(np.linalg.norm(Q, axis=1), 1, atol=1e-5)
    own = (Q * G).sum(1)
    assert np.median(own) > 0.8  # each line map lands next to its own photo
    # ... and far better than comparing the two domains as they come
    raw = (normalize(L) * normalize(P)).sum(1)
    assert np.median(own) > np.median(raw) + 0.3
    top = np.argmax(Q @ G.T, axis=1)
    assert (kind[top] == kind).mean() > 0.9


def test_sketches_are_centred_on_their_own_domain():
    P, L, kind, R, offset = _two_views()
    rng = np.random.default_rng(1)
    S = L[:100] + rng.normal(size=L[:100].shape) * 0.2 + 3.0  # a shifted "sketch" domain
    shift = domain_shift(S, L[:100])
    plain = LineToPhotoMap().fit(L, P)
    shifted = LineToPhotoMap(sketch_shift=shift).fit(L, P)
    assert np.allclose(shifted.sketch_mean_, plain.line_mean_ + shift)
    G = shifted.photos(P)

    def right(m):
        return (kind[np.argmax(m.transform(S) @ G.T, axis=1)] == kind[:100]).mean()

    assert right(shifted) > right(plain)


def test_map_round_trips_through_its_arrays_and_checks_its_input():
    P, L, _, _, _ = _two_views(n=80, d=8)
    m = LineToPhotoMap(max_photos=50).fit(L, P)
    assert m.n_photos_ == 50
    again = LineToPhotoMap.from_arrays(m.arrays())
    assert np.allclose(again.transform(L), m.transform(L), atol=1e-5)
    assert np.allclose(again.photos(P), m.photos(P), atol=1e-5)
    with pytest.raises(ValueError, match="sketch_shift"):
        LineToPhotoMap(sketch_shift=np.zeros(3)).fit(L, P)
    with pytest.raises(ValueError, match="alpha"):
        LineToPhotoMap(alpha=0).fit(L, P)
    with pytest.raises(ValueError):
        m.transform(L[:, :4])


def test_the_default_backbone_ships_its_sketch_offset():
    shift = shipped_shift("efficientnet_lite0", "canny")
    assert shift is not None and shift.shape == (1280,) and np.isfinite(shift).all()
    assert np.linalg.norm(shift) > 0.05  # sketches are not where line maps are
    assert shipped_shift("no-such-backbone", "canny") is None
