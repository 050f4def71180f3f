"""Content hashes: an image's identity (exact duplicates, thumbnails) and a model's."""

from __future__ import annotations

import hashlib
import os

CHUNK = 2**20


def sha256_file(path: str | bytes | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    return hash_and_read(path, read_whole_below=0)[0]


def hash_and_read(path: str | bytes | os.PathLike[str], read_whole_below: int
                  ) -> tuple[str, bytes | None]:
    """``(sha256, bytes)``: files smaller than ``read_whole_below`` bytes are read once and
    returned, so a caller can decode them without a second read; larger ones are hashed in
    chunks and ``None`` is returned."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < read_whole_below:
            data = f.read()
            return hashlib.sha256(data).hexdigest(), data
        h = hashlib.sha256()
        while chunk := f.read(CHUNK):
            h.update(chunk)
        return h.hexdigest(), None
