"""Thumbnails, made once per image content and cached in the workspace.

The cache is keyed by the file's sha256 (duplicates share one thumbnail; an edited file gets
a new one) and written atomically, so reports can be built while another process writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from imgatlas._progress import progress_bar
from imgatlas.decode import open_image, to_rgb
from imgatlas.store import ImageRow, Workspace

THUMB_SIZE = 96  # px, longest side: ~2-4 KB as JPEG, so 10,000 of them stay near 30 MB
THUMB_QUALITY = 80


def thumb_dir(ws: Workspace) -> Path:
    return ws.path / "thumbs" / str(THUMB_SIZE)


# An image already no larger than a thumbnail, in a format every browser shows, is its own
# thumbnail: the thumbnail would be the same pixels (thumbnails never upscale) re-encoded,
# and decoding and encoding 10,000 of them was most of a 10,000-image report's time.
KEEP_FORMATS = {"PNG": "png", "JPEG": "jpg"}
KEEP_MODES = ("RGB", "L")
KEEP_BYTES = 32_768
KEPT = "-o"  # name suffix of a thumbnail that is the original file


def thumb_name(row: ImageRow) -> str:
    key = row.sha256 or f"id{row.id}"
    if (row.format in KEEP_FORMATS and row.mode in KEEP_MODES and row.width and row.height
            and max(row.width, row.height) <= THUMB_SIZE and row.size is not None
            and row.size <= KEEP_BYTES):
        return f"{key}{KEPT}.{KEEP_FORMATS[row.format]}"
    return f"{key}.jpg"


def thumb_media_type(path: Path) -> str:
    return "image/png" if path.suffix == ".png" else "image/jpeg"


def make_thumbnail(path: bytes | str, out: Path, size: int = THUMB_SIZE) -> bool:
    """Write a thumbnail of ``path`` to ``out`` (a copy of the file where :func:`thumb_name`
    named it so and the file is as the catalog says, else a JPEG, or a PNG for a ``.png``
    name); False when the image cannot be read."""
    try:
        with open_image(path, max_pixels=None) as img:
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            if out.stem.endswith(KEPT) and _is_its_own_thumbnail(img, out, size):
                with open(path, "rb") as f:
                    data = f.read(KEEP_BYTES + 1)
                if len(data) <= KEEP_BYTES:
                    tmp.write_bytes(data)
                    os.replace(tmp, out)
                    return True
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # DCT scaling: decode at 1/2..1/8 size
            img = ImageOps.exif_transpose(img) if img.getexif() else img
            img = to_rgb(img)
            img.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            if out.suffix == ".png":
                img.save(tmp, "PNG")
            else:
                img.save(tmp, "JPEG", quality=THUMB_QUALITY)
            os.replace(tmp, out)
            return True
    except Exception:  # noqa: BLE001 - a broken file gets the placeholder, never a crash
        return False


def _is_its_own_thumbnail(img: Image.Image, out: Path, size: int) -> bool:
    """The file is what its name promises (the catalog may be older than the file): that
    format and mode, no larger than ``size``, no EXIF rotation to apply."""
    return (KEEP_FORMATS.get(img.format or "") == out.suffix[1:] and img.mode in KEEP_MODES
            and max(img.size) <= size and img.getexif().get(0x0112, 1) == 1)


def _make_many(jobs: list[tuple[bytes | str, str]]) -> list[bool]:
    return [make_thumbnail(src, Path(dst)) for src, dst in jobs]


class ThumbnailJob:
    """Thumbnails made in a separate process while the caller does other work.

    The report starts this before its 2-D map: UMAP's first fit in a process is mostly
    single-threaded numba compilation, so on two cores the thumbnails come for free. Small
    jobs run inline in :meth:`result`. ``spawn``, not ``fork``: the parent has OpenMP thread
    pools (faiss, BLAS) that a forked child could deadlock on.
    """

    CHUNK = 500
    INLINE_BELOW = 300

    def __init__(self, ws: Workspace, rows: list[ImageRow], *, progress: bool = False,
                 first: tuple[Callable[..., Any], tuple[Any, ...]] | None = None) -> None:
        """``first``: ``(function, args)`` to run in the thumbnail process before the
        thumbnails, when there is one (:meth:`first_result`)."""
        folder = thumb_dir(ws)
        folder.mkdir(parents=True, exist_ok=True)
        self.paths: dict[int, Path] = {}
        todo: dict[str, tuple[bytes | str, str]] = {}
        for r in rows:
            p = folder / thumb_name(r)
            self.paths[r.id] = p
            if not p.exists():
                todo.setdefault(p.name, (r.path, str(p)))
        self.todo = list(todo.values())
        self.progress = progress
        self.pool = None
        self.futures: list = []
        self.first: Future[Any] | None = None
        if len(self.todo) >= self.INLINE_BELOW:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
            if first is not None:
                self.first = self.pool.submit(first[0], *first[1])
            self.futures = [self.pool.submit(_make_many, self.todo[i:i + self.CHUNK])
                            for i in range(0, len(self.todo), self.CHUNK)]

    def first_result(self) -> Any:
        """What ``first`` returned, or None when it did not run here (no thumbnail
        process) or failed there: the caller then does it itself."""
        if self.first is None:
            return None
        try:
            return self.first.result()
        except Exception:  # noqa: BLE001 - a dead worker or a failed call: done inline
            return None

    def result(self) -> dict[int, Path | None]:
        """Every row's thumbnail path; ``None`` where the image could not be read."""
        bar = progress_bar(len(self.todo), "thumbnails", "img", self.progress)
        ok: list[bool] = []
        try:
            if self.pool is None:
                for src, dst in self.todo:
                    ok.append(make_thumbnail(src, Path(dst)))
                    bar.update()
            else:
                for n, f in enumerate(self.futures):
                    try:
                        done = f.result()
                    except Exception:  # noqa: BLE001 - a dead worker: make this chunk here
                        done = _make_many(self.todo[n * self.CHUNK:(n + 1) * self.CHUNK])
                    ok += done
                    bar.update(len(done))
        finally:
            bar.close()
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
        failed = {dst for (_src, dst), good in zip(self.todo, ok, strict=True) if not good}
        return {i: (None if str(p) in failed else p) for i, p in self.paths.items()}

