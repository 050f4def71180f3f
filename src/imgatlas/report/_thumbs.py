"""Thumbnails, made once per image content and cached in the workspace.

The cache is keyed by the file's sha256 (duplicates share one thumbnail; an edited file gets
a new one) and written atomically, so reports can be built while another process writes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from imgatlas._progress import progress_bar
from imgatlas.decode import open_image, to_rgb
from imgatlas.store import ImageRow, Workspace

THUMB_SIZE = 96  # px, longest side: ~2-4 KB as JPEG, so 10,000 of them stay near 30 MB
THUMB_QUALITY = 80


def thumb_dir(ws: Workspace) -> Path:
    return ws.path / "thumbs" / str(THUMB_SIZE)


def thumb_name(row: ImageRow) -> str:
    return f"{row.sha256 or f'id{row.id}'}.jpg"


def make_thumbnail(path: bytes | str, out: Path, size: int = THUMB_SIZE) -> bool:
    """Write a JPEG thumbnail of ``path`` to ``out``; False when the image cannot be read."""
    try:
        with open_image(path, max_pixels=None) as img:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # DCT scaling: decode at 1/2..1/8 size
            img = ImageOps.exif_transpose(img) if img.getexif() else img
            img = to_rgb(img)
            img.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            img.save(tmp, "JPEG", quality=THUMB_QUALITY, optimize=True)
            os.replace(tmp, out)
            return True
    except Exception:  # noqa: BLE001 - a broken file gets the placeholder, never a crash
        return False


def ensure_thumbnails(ws: Workspace, rows: list[ImageRow], *, workers: int = 4,
                      progress: bool = False) -> dict[int, Path | None]:
    """The cached thumbnail of every row (made now when missing); ``None`` if unreadable."""
    folder = thumb_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[int, Path | None] = {}
    todo: dict[str, tuple[ImageRow, Path]] = {}
    for r in rows:
        p = folder / thumb_name(r)
        out[r.id] = p
        if not p.exists():
            todo.setdefault(p.name, (r, p))
    if todo:
        bar = progress_bar(len(todo), "thumbnails", "img", progress)
        with ThreadPoolExecutor(workers) as pool:
            jobs = [(r, p, pool.submit(make_thumbnail, r.path, p)) for r, p in todo.values()]
            failed = set()
            for _r, p, job in jobs:
                if not job.result():
                    failed.add(p)
                bar.update()
        bar.close()
        for i, p in out.items():
            if p in failed:
                out[i] = None
    return out
