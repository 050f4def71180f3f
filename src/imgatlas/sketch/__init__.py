"""Query by sketch: a shared line domain (drawings and the photos' model-free line maps,
normalised alike), a line->photo map fitted on the collection's own photos (each photo's
line map taught to land where the photo does), an optional adapter trained on sketch-photo
pairs of other classes, and the search, index and evaluation stages over them."""

from imgatlas._lazy import lazy_exports
from imgatlas.sketch._drawing import BlankDrawing, load_drawing, normalise_lines, sketch_pixels
from imgatlas.sketch._lines import LINE_DETECTORS, photo_lines
from imgatlas.sketch._map import LineToPhotoMap

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["build_sketch_index", "evaluate_sketch", "search_sketch"], "._stage"),
    **dict.fromkeys(["train_sketch_workspace"], "._train"),
})

__all__ = [
    "LINE_DETECTORS",
    "BlankDrawing",
    "LineToPhotoMap",
    "build_sketch_index",
    "evaluate_sketch",
    "load_drawing",
    "normalise_lines",
    "photo_lines",
    "search_sketch",
    "sketch_pixels",
    "train_sketch_workspace",
]
