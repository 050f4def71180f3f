"""Every default and every choice list of the pipeline, in one place: the CLI, the Python
API, the stages and the web app read them from here (benchmarks/RESULTS.md says why each
default is what it is)."""

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
SHARD_SIZE = 65_536  # images per shard (320 MB of 1280-d float32 per shard in flight)
RAY_SAMPLE_SIZE = 100_000  # cluster --engine ray fits on a seeded sample of this many
EF_SEARCH = 128  # graph index search breadth (float and binary HNSW)
NPROBE = 16  # IVF lists probed per query
MAX_SEED = 2**32 - 1  # NumPy's seed range
REFIT_GROWTH = 0.10  # run: a collection changed by more than this share is clustered again
SERVE_HOST = "127.0.0.1"  # loopback: other hosts need --host and a token
SERVE_PORT = 8765
MAX_UPLOAD_MB = 20  # web app uploads (images to search or classify)

# choice lists (the CLI's choices, the API's checks and the help texts read these)
ENGINES = ("local", "ray")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "float16")
PRECISIONS = ("auto", "fp32", "int8")
TRAIN_MODES = ("head", "finetune", "cnn-small")
# read beside the default backbone's features by the default head and label spreading, when
# the lite extra is installed (classify/_features.py)
SECOND_BACKBONE = "efficientnet_lite2"
# label-propagate --method: auto, then classify._propagate.PROPAGATORS in the order that breaks
# ties of the choice (classify/_choose.py)
PROPAGATION_METHODS = ("auto", "clusters", "self-training", "head", "spreading")
AUTOENCODER_PRESETS = ("default", "apparel", "fashion")
AUTOENCODER_DEVICES = ("cpu", "cuda")
MAP_METHODS = ("auto", "umap", "pca")
MCNEMAR_METHODS = ("auto", "exact", "midp", "chi2")
EXPORT_MODES = ("link", "hardlink", "copy")


def codes(n: int, dim: int = 1280) -> str:
    """The default search code for ``n`` images of ``dim``-d features: ``itq:512+dsh`` (64
    bytes per image). Fewer bits below 1,024 images, as ITQ needs more images than bits
    (twice as many to be stable), and never more bits than the features have dimensions."""
    bits = MAX_CODE_BITS if n >= 2 * MAX_CODE_BITS else max(8, (n // 2) // 8 * 8)
    bits = min(bits, max(8, dim // 8 * 8))
    return f"itq:{bits}+dsh"
