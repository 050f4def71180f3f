"""A Hugging Face ``preprocessor_config.json`` as imgatlas' own decode settings: the resize
rule, the crop, the resampling filter and mean/std, so the model's images are prepared in
imgatlas' decode threads (OpenCV, JPEG DCT downscaling) and never by transformers."""

from __future__ import annotations

from typing import Any

from imgatlas.errors import UnsupportedModel

# PIL's resample codes, as the configs store them
# (Pillow's own filters, as transformers resizes: the model's cost dwarfs the resize's)
_RESAMPLE = {0: "pil-nearest", 1: "pil-lanczos", 2: "pil-bilinear", 3: "pil-bicubic"}


def decode_settings(pp: dict[str, Any], repo: str) -> dict[str, Any]:
    """``{input_size, resize, interpolation, mean, std}`` (mean/std in 0-255 pixel units)
    of a preprocessor config; what imgatlas cannot reproduce is a one-line error."""
    size = pp.get("size") or {}
    crop = pp.get("crop_size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    do_resize = pp.get("do_resize", True)
    do_crop = pp.get("do_center_crop", False)
    if not do_resize:
        raise UnsupportedModel(f"{repo}'s preprocessor does not resize (do_resize false); "
                               "imgatlas needs a fixed input size.")
    if "height" in size and "width" in size:
        w, h = int(size["width"]), int(size["height"])
        resize = "squash"
        if do_crop and crop and (int(crop["width"]), int(crop["height"])) != (w, h):
            raise UnsupportedModel(f"{repo} resizes to {w}x{h} then crops: not supported.")
    elif "shortest_edge" in size:
        side = int(size["shortest_edge"])
        if not do_crop or not crop:
            raise UnsupportedModel(f"{repo}'s preprocessor keeps the aspect ratio without a "
                                   "crop (a variable input size): not supported.")
        w, h = int(crop["width"]), int(crop["height"])
        resize = "center_crop" if side == min(w, h) else f"center_crop:{side}"
    else:
        raise UnsupportedModel(f"{repo}'s preprocessor size {size} is not one imgatlas reads "
                               "(height/width or shortest_edge).")
    rescale = float(pp.get("rescale_factor", 1 / 255)) if pp.get("do_rescale", True) else 1.0
    if pp.get("do_normalize", True):
        mean = [float(m) / rescale for m in pp.get("image_mean", (0.5, 0.5, 0.5))]
        std = [float(s) / rescale for s in pp.get("image_std", (0.5, 0.5, 0.5))]
    else:
        mean, std = [0.0] * 3, [1.0 / rescale] * 3
    if len(mean) != 3 or len(std) != 3:
        raise UnsupportedModel(f"{repo}'s preprocessor is not for RGB images.")
    interpolation = _RESAMPLE.get(int(pp.get("resample", 3)), "pil-bicubic")
    return {"input_size": (w, h), "resize": resize, "interpolation": interpolation,
            "mean": tuple(round(m, 6) for m in mean), "std": tuple(round(s, 6) for s in std)}
