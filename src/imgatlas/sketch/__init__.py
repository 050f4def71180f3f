"""Query by sketch: a shared line domain (drawings and the photos' model-free line maps,
normalised alike), an optional adapter trained on sketch-photo pairs of other classes, and
the search, index and evaluation stages over it."""

from imgatlas.sketch._drawing import BlankDrawing, load_drawing, normalise_lines
from imgatlas.sketch._lines import LINE_DETECTORS, photo_lines

__all__ = ["LINE_DETECTORS", "BlankDrawing", "load_drawing", "normalise_lines", "photo_lines"]
