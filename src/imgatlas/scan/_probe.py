from __future__ import annotations

import io
import os
from dataclasses import dataclass

from PIL import Image

from imgatlas._hashing import hash_and_read
from imgatlas.decode import TooLarge, error_reason, open_image, to_rgb, upright_size
from imgatlas.errors import DecodeError
from imgatlas.store.catalog import Status

_READ_WHOLE = 256 * 2**20  # files up to this size are read once for hash + decode
# What a probe records changed: 2 = the real size of JPEGs (version 1 recorded the size after
# the 1/8-scale draft decode). A row probed by an older version is probed again by the next
# scan, so existing workspaces are corrected without a full re-scan.
PROBE_VERSION = 2


@dataclass(frozen=True)
class ProbeResult:
    status: Status
    reason: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None


def probe(path: bytes, max_pixels: int | None) -> ProbeResult:
    """Hash a file and check that it decodes, cheaply (JPEGs at 1/8 scale).

    A full (reduced) decode is the only way to catch truncated files; the ``draft`` trick
    makes it cost a fraction of a real decode.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return ProbeResult(Status.UNREADABLE, error_reason(e))
    base = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if st.st_size == 0:
        return ProbeResult(Status.EMPTY, "zero-byte file", **base)
    try:
        digest, data = hash_and_read(path, _READ_WHOLE + 1)
    except OSError as e:
        return ProbeResult(Status.UNREADABLE, e.strerror or error_reason(e), **base)
    base["sha256"] = digest
    src = io.BytesIO(data) if data is not None else path
    try:
        img = open_image(src, max_pixels)
    except TooLarge as e:
        return ProbeResult(Status.TOO_LARGE, str(e), **base)
    except DecodeError:
        return ProbeResult(Status.NOT_IMAGE, "not an image (content is no known image format)",
                           **base)
    except OSError as e:
        return ProbeResult(Status.UNREADABLE, error_reason(e), **base)
    with img:
        fmt, mode = img.format, img.mode
        try:
            # the real size, read before draft() shrinks the image it decodes
            w, h = upright_size(img)
            if fmt == "JPEG":
                img.draft(img.mode, (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
            img.load()
            to_rgb(img)
        except OSError as e:
            msg = error_reason(e)
            status = Status.TRUNCATED if "truncat" in msg.lower() else Status.CORRUPT
            return ProbeResult(status, msg, **base, format=fmt, mode=mode)
        except (SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
            return ProbeResult(Status.CORRUPT, error_reason(e), **base, format=fmt, mode=mode)
    return ProbeResult(Status.OK, None, **base, width=w, height=h, format=fmt, mode=mode)

