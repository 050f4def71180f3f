"""Bytes -> RGB uint8 arrays: EXIF orientation, every common mode, cheap JPEG downscaling."""

from imgatlas.decode._image import (
    DEFAULT_MAX_PIXELS,
    INTERPOLATION,
    TooLarge,
    decode_bytes,
    decode_rgb,
    error_reason,
    load_rgb,
    open_image,
    read_file,
    resize_for_model,
    resize_rgb,
    to_rgb,
    upright_size,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INTERPOLATION",
    "TooLarge",
    "decode_bytes",
    "decode_rgb",
    "error_reason",
    "load_rgb",
    "open_image",
    "read_file",
    "resize_for_model",
    "resize_rgb",
    "to_rgb",
    "upright_size",
]
