from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import pattern, write_image
from imgatlas import api
from imgatlas.store import Workspace


def _by_name(ws_path: Path) -> dict[str, tuple[str, str | None]]:
    with Workspace.open(ws_path) as ws:
        return {
            os.path.basename(r.path).decode("utf-8", "backslashreplace"): (r.status, r.reason)
            for r in ws.images(status=None)
        }


def test_every_format_is_found_and_ok(tmp_path):
    d = tmp_path / "in"
    for name, fmt, mode in [("a.jpg", "JPEG", "RGB"), ("b.png", "PNG", "RGBA"),
                            ("c.webp", "WEBP", "RGB"), ("d.bmp", "BMP", "RGB"),
                            ("e.gif", "GIF", "P"), ("f.tif", "TIFF", "CMYK"),
                            ("g.tiff", "TIFF", "I;16"), ("h.png", "PNG", "LA"),
                            ("i.png", "PNG", "1"), ("j.jpeg", "JPEG", "L")]:
        if mode == "I;16":
            d.mkdir(exist_ok=True)
            Image.fromarray(np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30).save(d / name)
        else:
            write_image(d / name, fmt=fmt, mode=mode)
    write_image(d / "noext", fmt="PNG")  # found by its magic bytes
    (d / "notes.txt").write_text("not a candidate")
    res = api.scan(d, tmp_path / "ws")
    assert res["found"] == 11
    got = _by_name(tmp_path / "ws")
    assert all(s == "ok" for s, _ in got.values()), got
    assert "notes.txt" not in got


def _broken_corpus(d: Path) -> None:
    d.mkdir(parents=True)
    write_image(d / "good.jpg", fmt="JPEG")
    (d / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(pattern(300, 300)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[:3000])
    (d / "text.jpg").write_text("I am not a picture")
    write_image(d / "huge.png", 400, 400)
    pbuf = io.BytesIO()
    Image.fromarray(pattern(50, 50)).save(pbuf, "PNG")
    raw = bytearray(pbuf.getvalue())
    raw[60:80] = b"\x00" * 20  # damage the image data, keep the header
    (d / "corrupt.png").write_bytes(bytes(raw))
    os.symlink(d / "nowhere.jpg", d / "dangling.jpg")
    os.symlink(d / "selfloop.jpg", d / "selfloop.jpg")
    sub = d / "sub"
    sub.mkdir()
    os.symlink(d, sub / "back_to_top")  # directory loop


def test_broken_files_are_recorded_with_reasons_and_scan_goes_on(tmp_path):
    d = tmp_path / "broken"
    _broken_corpus(d)
    res = api.scan(d, tmp_path / "ws", max_pixels=100_000)
    got = _by_name(tmp_path / "ws")
    expect = {
        "good.jpg": "ok", "zero.jpg": "empty", "truncated.jpg": "truncated",
        "text.jpg": "not_image", "huge.png": "too_large", "corrupt.png": "corrupt",
        "dangling.jpg": "broken_symlink", "selfloop.jpg": "symlink_loop",
        "back_to_top": "symlink_loop",
    }
    assert {k: v[0] for k, v in got.items()} == expect
    for name, (status, reason) in got.items():
        if status != "ok":
            assert reason and "\n" not in reason, name
    assert "160,000 pixels exceeds the limit of 100,000" in got["huge.png"][1]
    st = api.status(tmp_path / "ws")
    assert st["usable"] == 1 and len(st["failed"]) == 8
    assert res["by_status"]["ok"] == 1


def test_unreadable_file(tmp_path, monkeypatch):
    from imgatlas.scan import _probe

    d = tmp_path / "in"
    write_image(d / "a.png")
    write_image(d / "secret.png", seed=1)
    real = _probe.hash_and_read

    def deny(path, read_whole_below):
        if path.endswith(b"secret.png"):
            raise PermissionError(13, "Permission denied")
        return real(path, read_whole_below)

    monkeypatch.setattr(_probe, "hash_and_read", deny)
    api.scan(d, tmp_path / "ws")
    assert _by_name(tmp_path / "ws")["secret.png"] == ("unreadable", "Permission denied")


def test_odd_names(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    names = [b"with space.png", b"caf\xe9-latin1.png", "日本語.png".encode(),
             b"x" * 200 + b".png", b"<img src=x onerror=alert(1)>.png"]
    for k, n in enumerate(names):
        write_image(Path(os.fsdecode(os.path.join(os.fsencode(d), n))), seed=k)
    api.scan(d, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        rows = ws.images()
    assert len(rows) == 5
    assert {os.path.basename(r.path) for r in rows} == set(names)
    latin = next(r for r in rows if b"latin1" in r.path)
    assert "\\xe9" in latin.display  # printable, and the raw bytes kept in path


def test_rescan_is_incremental(tmp_path):
    d = tmp_path / "in"
    for k in range(4):
        write_image(d / "c" / f"{k}.png", seed=k)
    ws = tmp_path / "ws"
    first = api.scan(d, ws, labels_from_folders=True)
    assert first["new"] == 4
    again = api.scan(d, ws, labels_from_folders=True)
    assert (again["new"], again["changed"], again["unchanged"], again["removed"]) == (0, 0, 4, 0)

    write_image(d / "c" / "4.png", seed=4)           # added
    os.remove(d / "c" / "0.png")                      # removed
    write_image(d / "c" / "1.png", 60, 60, seed=99)   # changed (size differs)
    third = api.scan(d, ws, labels_from_folders=True)
    assert (third["new"], third["changed"], third["unchanged"], third["removed"]) == (1, 1, 2, 1)
    got = _by_name(ws)
    assert got["0.png"][0] == "missing" and got["4.png"][0] == "ok"
    with Workspace.open(ws) as w:
        assert {r.label for r in w.images()} == {"c"}
        assert next(r for r in w.images() if r.path.endswith(b"1.png")).width == 60


def test_exact_duplicates_counted(tmp_path):
    d = tmp_path / "in"
    write_image(d / "a.png", seed=1)
    (d / "copy.png").write_bytes((d / "a.png").read_bytes())
    res = api.scan(d, tmp_path / "ws")
    assert res["exact_duplicates"] == 1


def test_workspace_inside_scanned_folder_is_not_scanned(tmp_path):
    d = tmp_path / "in"
    write_image(d / "a.png")
    ws = d / "work"
    api.scan(d, ws)
    write_image(ws / "thumb.png")  # something a later stage might write there
    assert api.scan(d, ws)["found"] == 1


def test_missing_directory_is_a_clear_error(tmp_path):
    from imgatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        api.scan(tmp_path / "nope", tmp_path / "ws")
    assert not (tmp_path / "ws").exists()  # nothing created for nothing


def test_jpeg_size_is_the_real_size(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(pattern(224, 300, 1)).save(d / "tall.jpg", quality=90)
    rotated = Image.fromarray(pattern(400, 240, 2))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 240 x 400
    rotated.save(d / "turned.jpg", quality=90, exif=exif)
    api.scan(d, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as w:
        sizes = {os.path.basename(r.path): (r.width, r.height) for r in w.images()}
    assert sizes == {b"tall.jpg": (224, 300), b"turned.jpg": (240, 400)}


def test_a_workspace_scanned_by_the_old_probe_is_corrected_by_the_next_scan(tmp_path):
    import sqlite3

    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(pattern(224, 224, 1)).save(d / "a.jpg", quality=90)
    ws = tmp_path / "ws"
    api.scan(d, ws)
    con = sqlite3.connect(ws / "catalog.sqlite")  # as the 1/8-scale probe left it
    con.execute("UPDATE images SET width=28, height=28, probe_version=NULL")
    con.execute("INSERT INTO embedded VALUES ('some-store', 1)")
    con.commit()
    con.close()
    res = api.scan(d, ws)
    assert (res["new"], res["changed"], res["unchanged"]) == (0, 0, 1)
    with Workspace.open(ws) as w:
        assert [(r.width, r.height) for r in w.images()] == [(224, 224)]
    con = sqlite3.connect(ws / "catalog.sqlite")
    assert con.execute("SELECT count(*) FROM embedded").fetchone()[0] == 1  # features kept
    con.close()


@pytest.mark.parametrize("side, threaded", [(24, False), (400, True)])
def test_small_files_are_probed_in_one_thread(tmp_path, monkeypatch, side, threaded):
    """Files below the median size where threads pay are probed by the scanning thread
    itself (threads only pass the GIL to and fro); larger ones by the thread pool. The
    catalog is the same either way."""
    import threading

    from imgatlas.scan import _scan

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for i in range(6):  # noise compresses badly: big files at 400 px, tiny ones at 24
        noise = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / "in" / f"{i}.png")
    assert (_scan._median_size(sorted(_scan.walk(os.fsencode(tmp_path / "in"), frozenset()),
                                      key=lambda f: f.path))
            >= _scan._THREADS_FROM_BYTES) == threaded
    where = set()
    real = _scan.probe

    def spy(path, max_pixels):
        where.add(threading.current_thread() is threading.main_thread())
        return real(path, max_pixels)

    monkeypatch.setattr(_scan, "probe", spy)
    res = api.scan(tmp_path / "in", tmp_path / "ws")
    assert res["new"] == 6 and res["by_status"] == {"ok": 6}
    assert where == {not threaded}
