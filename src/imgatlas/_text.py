"""Text from the data made safe to print: file names can be any bytes."""

from __future__ import annotations

import os


def printable(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A printable form of an OS path: valid UTF-8 as is, other bytes as ``\\xNN``.

    A ``str`` that came from ``os.fsdecode`` may hold lone surrogates (``\\udce9`` for the
    byte 0xE9), which no UTF-8 writer accepts; they go back to their bytes first, so every
    output (terminal, JSON, CSV, HTML) gets the same escaped form and never a crash.
    """
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")
