from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from imgatlas._text import printable

IMAGE_EXTENSIONS = frozenset(
    b".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .gif .tif .tiff .heic .heif .avif".split()
)

# First bytes of the formats we read: lets an image without an extension be found.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass(frozen=True)
class Found:
    path: bytes  # absolute, as the OS spells it
    label: str | None  # parent folder name, relative to the scan root
    problem: str | None = None  # "broken_symlink" | "symlink_loop" | None
    reason: str | None = None


def walk(root: bytes, exclude: frozenset[bytes] = frozenset()) -> Iterator[Found]:
    """Yield image candidates below ``root``, following directory symlinks without looping.

    Candidates are files with an image extension, plus extension-less files whose first bytes
    look like an image. Hidden entries (dot files) and ``exclude`` (e.g. the workspace) are
    skipped. Broken symlinks and symlink loops are yielded with ``problem`` set.
    """
    root = os.path.abspath(root)
    st = os.stat(root)
    yield from _walk_dir(root, root, {(st.st_dev, st.st_ino)}, exclude)


def _walk_dir(root: bytes, d: bytes, ancestors: set[tuple[int, int]],
              exclude: frozenset[bytes]) -> Iterator[Found]:
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError:
        return  # unreadable directory: nothing to record but its absence
    for e in entries:
        if e.name.startswith(b".") or e.path in exclude:
            continue
        try:
            is_dir = e.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            try:
                st = os.stat(e.path)
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                yield Found(e.path, _label(root, e.path), "symlink_loop",
                            "directory symlink points back to one of its parents")
                continue
            yield from _walk_dir(root, e.path, ancestors | {ident}, exclude)
            continue
        if e.is_symlink():
            try:
                os.stat(e.path)
            except OSError as err:
                if _looks_like_image_name(e.name):
                    if err.errno == errno.ELOOP:
                        yield Found(e.path, _label(root, e.path), "symlink_loop",
                                    "symlink loop: the link resolves to itself")
                    else:
                        yield Found(e.path, _label(root, e.path), "broken_symlink",
                                    "broken symlink: its target does not exist")
                continue
        try:
            if not e.is_file(follow_symlinks=True):
                continue
        except OSError:
            continue
        if _looks_like_image_name(e.name) or (_no_extension(e.name) and _sniff(e.path)):
            yield Found(e.path, _label(root, e.path))


def _label(root: bytes, path: bytes) -> str | None:
    parent = os.path.dirname(path)
    if parent == root:
        return None
    return printable(os.path.basename(parent))


def _looks_like_image_name(name: bytes) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _no_extension(name: bytes) -> bool:
    return not os.path.splitext(name)[1]


def _sniff(path: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(_MAGIC)
