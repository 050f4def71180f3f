"""Bytes -> RGB uint8 arrays: EXIF orientation, every common mode, cheap JPEG downscaling."""

from imgatlas.decode._image import (
    DEFAULT_MAX_PIXELS,
    TooLarge,
    decode_bytes,
    decode_rgb,
    open_image,
    to_rgb,
)

__all__ = ["DEFAULT_MAX_PIXELS", "TooLarge", "decode_bytes", "decode_rgb", "open_image",
           "to_rgb"]
