"""faiss plumbing shared by the code families: search-time settings, reading, code sizes."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.errors import WorkspaceError

EF_SEARCH = defaults.EF_SEARCH
NPROBE = defaults.NPROBE
REFINE_FACTOR = 8  # +rerank: the PQ search returns k * this candidates for exact re-scoring
# IVF indexes train their lists (and residual PQ) on at most this many vectors: 64 per list
# at 1M images (4,000 lists; faiss asks for >= 39). At 1M this cut the ivfpq:64 build from
# 261 to 148 s with the same recall (benchmarks/bench_search_scale.py). Not for the other
# families: a graph over PQ codes trained on a 262k sample lost recall on the synthetic set
# (hnswpq:64 1-recall@10 0.953 -> 0.880 and 0.927 for two sample seeds), and their training
# is cheap.
TRAIN_SAMPLE = 262_144
# From this many lists the coarse quantiser is trained by two-level k-means (sqrt(nlist)
# groups, then each group split in proportion to its size; faiss' recipe for large IVF
# indexes): each training vector is compared with ~2 sqrt(nlist) centroids instead of nlist.
# Below 39 vectors a list (faiss' minimum) the groups could not be split: one level then.
TWO_LEVEL_FROM = 2048


def train_index(index: Any, X: np.ndarray, seed: int | None) -> None:
    """Train ``index`` on ``X``; the lists of a large L2 IVF index by two-level k-means."""
    import faiss

    no_polysemous(index)
    ivf = faiss.try_extract_index_ivf(index)
    if (ivf is not None and ivf.nlist >= TWO_LEVEL_FROM and ivf.metric_type == faiss.METRIC_L2
            and not ivf.quantizer.ntotal and len(X) >= 39 * ivf.nlist):
        from faiss.contrib.clustering import two_level_clustering

        centroids, _ = two_level_clustering(np.ascontiguousarray(X, dtype=np.float32),
                                            math.isqrt(ivf.nlist), ivf.nlist,
                                            seed=1234 if seed is None else int(seed))
        ivf.quantizer.train(centroids)
        ivf.quantizer.add(centroids)  # faiss then trains only what follows the lists
    index.train(X)


def no_polysemous(index: Any) -> None:
    """Skip faiss' polysemous training of every PQ in ``index`` (``index_factory`` asks for
    it unless the PQ ends in ``np``). It renumbers each sub-quantiser's centroids so that
    Hamming distances between codes approximate theirs, which only a polysemous search
    (``polysemous_ht``) uses; imgatlas searches with the PQ distances, which the renumbering
    leaves as they are. At a million images it was 90 of the 108 s of training ivfpq:64."""
    import faiss

    parts = [index]
    for attr in ("base_index", "storage"):  # +rerank's PQ; an HNSW graph's PQ storage
        if getattr(index, attr, None) is not None:
            parts.append(faiss.downcast_index(getattr(index, attr)))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        parts.append(faiss.downcast_index(ivf))
    for part in parts:
        if getattr(part, "do_polysemous_training", False):
            part.do_polysemous_training = False


def training_sample(X: np.ndarray, seed: int | None) -> np.ndarray:
    if len(X) <= TRAIN_SAMPLE:
        return X
    from imgatlas._shards import sample_rows

    return np.ascontiguousarray(X[sample_rows(len(X), TRAIN_SAMPLE, seed)])


def set_search_params(index: Any, ef_search: int | None = None, nprobe: int | None = None
                      ) -> tuple[bool, bool]:
    """Search-time settings that faiss does not save with an index: the breadth of a graph
    search (float or binary HNSW) and the number of IVF lists probed. Returns which of the
    two the index has."""
    import faiss

    if isinstance(index, faiss.IndexRefine):
        index.k_factor = REFINE_FACTOR
        index = faiss.downcast_index(index.base_index)
    graph = hasattr(index, "hnsw")
    if graph:
        index.hnsw.efSearch = ef_search or EF_SEARCH
    ivf = faiss.try_extract_index_ivf(index) if isinstance(index, faiss.Index) else None
    if ivf is not None:
        ivf.nprobe = min(nprobe or NPROBE, ivf.nlist)
    return graph, ivf is not None


def read_index(path: Path, binary: bool = False, mmap: bool = True) -> Any:
    """Memory-map the index where faiss can (opening a 1M index then costs no copy)."""
    import faiss

    read = faiss.read_index_binary if binary else faiss.read_index
    if mmap:
        flags = faiss.IO_FLAG_MMAP if binary else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        try:
            return read(str(path), flags)
        except RuntimeError:  # a type faiss cannot map: read it whole
            pass
    return read(str(path))


def code_size(index: Any) -> float:
    """Bytes one vector costs in ``index``'s codes (graph links not counted)."""
    import faiss

    if isinstance(index, faiss.IndexRefine):  # the PQ code plus the re-ranking vector
        return (code_size(faiss.downcast_index(index.base_index))
                + code_size(faiss.downcast_index(index.refine_index)))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:  # a vector's list is where it is stored, not part of its code
        return float(ivf.code_size)
    try:
        return float(index.sa_code_size())
    except RuntimeError:  # HNSW over PQ has no standalone codec: its storage's codes
        return float(faiss.downcast_index(index.storage).sa_code_size())


def faiss_codes(index: Any, code_size: int) -> np.ndarray:
    """The packed codes of a flat binary index as an (n, code_size) uint8 view (no copy)."""
    import faiss

    ptr = index.xb.data()
    return faiss.rev_swig_ptr(ptr, index.ntotal * code_size).reshape(-1, code_size)


def pack(z: np.ndarray) -> np.ndarray:
    """Sign bits of ``z`` packed as faiss binary codes (bit j of byte i = dimension 8i + j)."""
    return np.packbits(np.asarray(z) > 0, axis=1, bitorder="little")


def unpack_pm(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packed codes -> +-1 float vectors."""
    b = np.unpackbits(codes, axis=1, count=bits, bitorder="little").astype(np.float32)
    return 2.0 * b - 1.0


def pq_bits(n: int) -> int:
    """Bits per sub-quantiser: 8 (256 centroids) needs ~10k training vectors; fewer images
    get coarser sub-quantisers instead of faiss' under-trained warnings."""
    return int(max(1, min(8, math.floor(math.log2(max(n, 2) / 39)))))


def pq_m(bytes_: int, d: int) -> int:
    """PQ with 8-bit sub-quantisers: ``bytes_`` sub-vectors, which must divide d."""
    m = bytes_
    while m > 1 and d % m:
        m -= 1
    return m


def to_pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def from_pickle(data: bytes, what: str) -> Any:
    try:  # the workspace's own file, written by save()
        return pickle.loads(data)  # noqa: S301
    except Exception as e:  # a damaged pickle raises nearly anything (KeyError, IndexError...)
        raise WorkspaceError(f"The index file {what} is damaged ({type(e).__name__}); "
                             "build the index again with 'imgatlas index'.") from e
