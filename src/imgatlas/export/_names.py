"""File and folder names that every system accepts, from any bytes or text.

A name from the data (a cluster's name, a file's name that may not even be UTF-8) becomes
valid UTF-8 without the characters Windows refuses (``<>:"/\\|?*``, control characters),
without a trailing dot or space, without the device names Windows reserves (``CON``,
``NUL``, ``COM1`` ...), and within 200 bytes. Bytes that are not UTF-8 are written as
``%XX`` so the name still says what it was.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                       *(f"LPT{i}" for i in range(1, 10))})
MAX_BYTES = 200  # of UTF-8 per name: ext4, APFS and NTFS all allow 255


def text_of(raw: bytes | str) -> str:
    """A file name's bytes as text: UTF-8 where they are, ``%XX`` for each byte that is
    not."""
    if isinstance(raw, str):
        return raw
    out, i = [], 0
    while i < len(raw):
        for j in range(min(len(raw), i + 4), i, -1):
            try:
                out.append(raw[i:j].decode("utf-8"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"%{raw[i]:02X}")
            i += 1
    return "".join(out)


def safe_name(raw: bytes | str, fallback: str = "unnamed") -> str:
    """``raw`` as a name every system accepts (see the module docstring)."""
    name = unicodedata.normalize("NFC", text_of(raw))
    name = _UNSAFE.sub("_", name).strip().rstrip(". ")
    if not name or name in (".", ".."):
        name = fallback
    stem = name.split(".", 1)[0]
    if stem.upper() in _RESERVED:
        name = "_" + name
    return _shorten(name)


def _shorten(name: str, suffix: str = "") -> str:
    """``name`` with ``suffix`` before its extension, cut to MAX_BYTES in the stem."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        stem, ext = name, ""
    tail = suffix + (f".{ext}" if ext else "")
    budget = MAX_BYTES - len(tail.encode("utf-8"))
    if len(stem.encode("utf-8")) > budget:
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    return stem + tail


def numbered(name: str, n: int) -> str:
    """``photo.jpg`` -> ``photo-2.jpg``: the ``n``-th file of that name in one folder."""
    return _shorten(name, f"-{n}")
