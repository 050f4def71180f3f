"""Copies as people make them (mirrored, turned, tilted, framed, stamped, cropped) found as
near-duplicates and named by kind, and near-misses (different photos of one kind of thing)
kept apart: on the bundled sample's real photos, with the default backbone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from conftest import ROOT
from imgatlas import api

SAMPLES = sorted((ROOT / "samples" / "clothing").glob("*/*.jpg"))


def _framed(im: Image.Image) -> Image.Image:
    """A screenshot of the photo in a dark-themed viewer: title bar, margin, caption. (A
    frame of the photo's own background colour is not told apart from it: see
    docs/guide/inspect.md.)"""
    w, h = im.size
    canvas = Image.new("RGB", (w, h), (38, 40, 46))
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, w, h // 14), fill=(90, 100, 110))
    small = im.resize((int(w * 0.65), int(h * 0.65)), Image.BICUBIC)
    canvas.paste(small, (w // 8, h // 10))
    for k in range(3):
        d.text((w // 8, h // 10 + small.height + 8 + 12 * k), "IMG_0042.jpg shared",
               fill=(220, 220, 220))
    return canvas


def _stamped(im: Image.Image) -> Image.Image:
    im = im.copy()
    w, h = im.size
    d = ImageDraw.Draw(im, "RGBA")
    d.text((w // 10, int(h * 0.7)), "(c) my photos 2026", fill=(255, 255, 255, 230),
           stroke_width=2, stroke_fill=(0, 0, 0, 200))
    s = min(w, h) // 5
    d.ellipse((w - s - 10, 10, w - 10, 10 + s), fill=(220, 30, 30, 230))
    return im


def _crop(im: Image.Image, share: float, x: float, y: float) -> Image.Image:
    w, h = im.size
    cw, ch = int(w * share), int(h * share)
    left, top = int((w - cw) * x), int((h - ch) * y)
    return im.crop((left, top, left + cw, top + ch))


def _tilted(im: Image.Image) -> Image.Image:
    w, h = im.size
    t = im.rotate(6, resample=Image.BICUBIC)
    m = np.sin(np.radians(6))
    return t.crop((int(h * m) + 2, int(w * m) + 2, w - int(h * m) - 2, h - int(w * m) - 2))


# kind -> (how the copy is made, a word its evidence must hold, or None)
KINDS = {
    "mirrored": (ImageOps.mirror, "mirrored"),
    "turned90": (lambda im: im.transpose(Image.ROTATE_270), "turned 90°"),
    "turned180": (lambda im: im.transpose(Image.ROTATE_180), "turned 180°"),
    "tilted": (_tilted, "tilted"),
    "framed": (_framed, "framed"),
    "crop70": (lambda im: _crop(im, 0.7, 0.9, 0.2), "cropped"),
    "crop+mirror": (lambda im: ImageOps.mirror(_crop(im, 0.85, 0.3, 0.7)), "mirrored"),
    "stamped": (_stamped, None),  # named "stamped" where most keypoints disagree
}


@pytest.fixture(scope="module")
def copies(tmp_path_factory, cache_dir):
    """One original per kind (a different sample photo each) with its copy, every other
    sample photo of the folder as it is (the near-misses: other garments of the same kind,
    photographed the same way), inspected."""
    root = tmp_path_factory.mktemp("copies") / "photos"
    root.mkdir()
    originals = SAMPLES[::6][:len(KINDS)]
    for (kind, (make, _)), src in zip(KINDS.items(), originals, strict=True):
        im = Image.open(src).convert("RGB")
        im.save(root / f"{kind}-original.jpg", quality=92)
        make(im).save(root / f"{kind}-copy.jpg", quality=85)
    for f in SAMPLES:
        if f not in originals:
            shutil.copy(f, root / f"other-{f.parent.name}-{f.name}")
    ws = root.parent / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    res = api.inspect(ws)
    groups = {}
    for g in res["near_duplicate_groups"]:
        names = [os.path.basename(p) for p in [g["keep"], *g["copies"]]]
        for n in names:
            groups[n] = (names, g["evidence"])
    return groups


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_copy_is_found_and_named(copies, kind):
    names, evidence = copies.get(f"{kind}-original.jpg", ([], []))
    assert sorted(names) == [f"{kind}-copy.jpg", f"{kind}-original.jpg"], names
    word = KINDS[kind][1]
    if word is not None:
        assert any(word in e for e in evidence), evidence


def test_different_photos_of_one_kind_stay_apart(copies):
    """The sample is 120 photos of 10 kinds of garment shot the same way (product photos on
    plain backgrounds): no two of them are copies, whatever their likeness."""
    wrong = {n for n, (names, _) in copies.items() if n.startswith("other-")}
    assert not wrong


def test_an_imagededup_style_family_forms_one_group(tmp_path, cache_dir):
    """imagededup's test family: an original, its mirror image, a copy turned 45 degrees
    (the canvas grown, black corners), a resized one and a grey one."""
    im = Image.open(SAMPLES[3]).convert("RGB")
    root = tmp_path / "family"
    root.mkdir()
    im.save(root / "original.jpg", quality=92)
    ImageOps.mirror(im).save(root / "mirrored.jpg", quality=90)
    im.rotate(45, resample=Image.BICUBIC, expand=True).save(root / "rotated.jpg", quality=90)
    im.resize((im.width // 2, im.height // 2)).save(root / "resized.jpg", quality=90)
    im.convert("L").save(root / "grey.png")
    for f in SAMPLES[40:60]:  # others around them
        shutil.copy(f, root / f"other-{f.name}")
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    groups = [{os.path.basename(p) for p in [g["keep"], *g["copies"]]}
              for g in api.inspect(ws)["near_duplicate_groups"]]
    assert {"original.jpg", "mirrored.jpg", "rotated.jpg", "resized.jpg", "grey.png"} in groups


def test_turned_views_hash_like_the_turned_copy():
    from imgatlas.inspect._pixels import TURNS, screen_gray, turn_bits, turned_hashes

    a = np.asarray(Image.open(SAMPLES[0]).convert("RGB"))
    views = turn_bits([turned_hashes(screen_gray(a))])[0]
    for k, turned in [(0, a[:, ::-1]), (1, np.rot90(a, -1)), (2, np.rot90(a, 2))]:
        import cv2

        own = np.frombuffer(cv2.img_hash.pHash(screen_gray(np.ascontiguousarray(turned)))
                            .tobytes(), np.uint8)
        assert np.unpackbits(own ^ views[k]).sum() <= 4, TURNS[k]


def test_a_frame_is_found_around_a_picture_and_not_in_a_plain_photo():
    from imgatlas.inspect._pixels import framed_content, screen_gray

    im = Image.open(SAMPLES[7]).convert("RGB")
    box = framed_content(screen_gray(np.asarray(_framed(im))))
    assert box is not None
    x, y, w, h = box
    side = screen_gray(np.asarray(_framed(im))).shape
    assert 0.25 < w * h / (side[0] * side[1]) < 0.6
    scenes = [framed_content(screen_gray(np.asarray(Image.open(f).convert("RGB"))))
              for f in SAMPLES[::10]]
    assert sum(b is not None for b in scenes) <= len(scenes) // 3


@pytest.mark.parametrize("angle, mirrored, ratio, words", [
    (0.0, True, 1.0, ["mirrored"]), (90.3, False, 1.0, ["turned 90°"]),
    (179.0, False, 1.0, ["turned 180°"]), (5.0, False, 0.9, ["tilted"]),
    (0.5, False, 0.5, ["cropped"]), (270.0, True, 0.4, ["mirrored", "turned 90°", "cropped"]),
])
def test_the_placement_names_the_kind(angle, mirrored, ratio, words):
    from imgatlas.inspect._verify import Match

    assert Match(100, 110, mirrored, angle, ratio, ratio).kind == words


def test_a_chance_placement_on_a_small_part_is_no_copy():
    """Two different dogs' faces: 20 keypoints agree on one spot (9 % of the picture), most
    matches elsewhere are noise; counted over the overlap alone they would pass."""
    from imgatlas.inspect._verify import Match

    assert not Match(20, 126, False, 2.1, 0.09, overlapping=33).same_photo
    assert Match(20, 126, False, 2.1, 0.45, overlapping=33).same_photo  # a crop
    assert not Match(20, 126, False, 33.0, 0.45, overlapping=33).same_photo  # turned oddly


def test_the_keeper_is_the_least_processed_copy_and_the_group_says_why(tmp_path, cache_dir):
    """Same pixels: the JPEG with the camera's EXIF is kept over a PNG saved from it (with an
    alpha channel) and over a JPEG re-saved without EXIF, whatever the files' ages."""
    import os
    import time

    im = Image.open(SAMPLES[11]).convert("RGB")
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Camera Maker", "Model 1"
    im.save(root / "from-camera.jpg", quality=95, exif=exif.tobytes())
    im.convert("RGBA").save(root / "saved-as.png")
    im.save(root / "re-saved.jpg", quality=80)
    old = time.time() - 86400
    for name in ("saved-as.png", "re-saved.jpg"):  # the copies look older
        os.utime(root / name, (old, old))
    for f in SAMPLES[70:80]:
        shutil.copy(f, root / f"other-{f.name}")
    ws = tmp_path / "ws"
    api.scan(root, ws)
    api.embed(ws, cache_dir=cache_dir)
    (g,) = [g for g in api.inspect(ws)["near_duplicate_groups"]
            if "from-camera" in g["keep"] or any("from-camera" in c for c in g["copies"])]
    assert os.path.basename(g["keep"]) == "from-camera.jpg"
    assert "EXIF" in g["keep_reason"]
    assert sorted(os.path.basename(c) for c in g["copies"]) == ["re-saved.jpg", "saved-as.png"]


def test_a_stamped_copy_is_named_when_its_keypoints_mostly_disagree():
    from imgatlas.inspect._verify import Match

    assert "stamped" in Match(20, 126, False, 0.3, 0.9, 0.95, overlapping=40).kind
    assert "stamped" not in Match(120, 126, False, 0.3, 0.9, 0.95, overlapping=120).kind


def test_a_mirrored_copy_across_the_splits_is_a_leak(tmp_path, cache_dir):
    """A mirrored copy in test/ of a train/ photo: found as a leak, so export --as-dataset
    puts the pair in one split."""
    root = tmp_path / "photos"
    for k, f in enumerate(SAMPLES[::12][:8]):
        split = "train" if k < 6 else "test"
        (root / split / "x").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / split / "x" / f.name)
    original = SAMPLES[0]
    ImageOps.mirror(Image.open(original).convert("RGB")).save(
        root / "test" / "x" / "mirrored.jpg", quality=90)
    ws = tmp_path / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, cache_dir=cache_dir)
    res = api.inspect(ws, splits="train,test")
    members = [sorted(os.path.basename(p) for p in lk["members"]) for lk in res["leaks"]]
    assert sorted([original.name, "mirrored.jpg"]) in members


def test_large_collections_search_hashes_through_an_inverted_file(tmp_path, cache_dir,
                                                                   monkeypatch):
    """Above EXACT_UP_TO images the hash searches go through a binary inverted file (no
    all-against-all): on a small collection with the bound lowered, the same groups."""
    import imgatlas.inspect._candidates as cand
    import imgatlas.inspect._space as space

    root = tmp_path / "photos"
    root.mkdir()
    for name, make in [("mirrored", ImageOps.mirror),
                       ("turned", lambda im: im.transpose(Image.ROTATE_90))]:
        im = Image.open(SAMPLES[30 if name == "mirrored" else 50]).convert("RGB")
        im.save(root / f"{name}-original.jpg", quality=92)
        make(im).save(root / f"{name}-copy.jpg", quality=85)
    for f in SAMPLES[60:100]:
        shutil.copy(f, root / f"other-{f.name}")

    def groups(ws: Path) -> list[set[str]]:
        api.scan(root, ws)
        api.embed(ws, cache_dir=cache_dir)
        return sorted(sorted({os.path.basename(p) for p in [g["keep"], *g["copies"]]})
                       for g in api.inspect(ws)["near_duplicate_groups"])

    exact = groups(tmp_path / "exact")
    monkeypatch.setattr(cand, "HASH_EXACT_UP_TO", 10)
    monkeypatch.setattr(space, "EXACT_UP_TO", 10)
    assert groups(tmp_path / "ivf") == exact
    assert ["mirrored-copy.jpg", "mirrored-original.jpg"] in exact


def test_an_aligned_placement_needs_few_keypoints_and_a_chance_one_many():
    """A stamp over much of a picture leaves 11 of 52 overlapping matches agreeing, all in
    place (the identity placement): a copy. The same count in a placement that is not the
    identity is no evidence."""
    from imgatlas.inspect._verify import Match

    assert Match(11, 87, False, 0.7, 0.4, 0.99, overlapping=52, aligned=True).same_photo
    assert not Match(11, 87, False, 0.7, 0.4, 0.99, overlapping=52).same_photo
    assert not Match(9, 87, False, 0.7, 0.4, 0.99, overlapping=52, aligned=True).same_photo
