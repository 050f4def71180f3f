"""Every default of the pipeline, in one place: the CLI, the Python API, the stages and the
web app read them from here (benchmarks/RESULTS.md says why each is what it is)."""

from __future__ import annotations

BACKBONE = "efficientnet_lite0"
# l2 -> partial PCA whitening to 128 components -> kNN smoothing (10 neighbours, twice):
# better than L2 alone on all five dev sets over 5 seeds (docs/design.md, clustering)
REDUCE = "l2,pca-whiten:128:0.15,knn-smooth:10"
METHOD = "kmeans"
K: int | str = "auto"
K_RANGE = (2, 30)  # the top-level sweep of --k auto (cluster/_select.py says the rule)
SEED = 0
BATCH_SIZE = 32
MAX_CODE_BITS = 512  # itq:512+dsh, 64 bytes per image


def codes(n: int, dim: int = 1280) -> str:
    """The default search code for ``n`` images of ``dim``-d features: ``itq:512+dsh`` (64
    bytes per image). Fewer bits below 1,024 images, as ITQ needs more images than bits
    (twice as many to be stable), and never more bits than the features have dimensions."""
    bits = MAX_CODE_BITS if n >= 2 * MAX_CODE_BITS else max(8, (n // 2) // 8 * 8)
    bits = min(bits, max(8, dim // 8 * 8))
    return f"itq:{bits}+dsh"
