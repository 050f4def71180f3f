"""IVF-PQ at scale, in autofaiss' pattern: the coarse lists and the PQ trained on a seeded
sample, codes added shard by shard: on the local engine straight into the trained index, on
Ray in parallel tasks whose shards' inverted lists are merged into one index.

Memory: the float vectors are never all in memory. Training holds the sample (at most
``TRAIN_SAMPLE`` vectors); each worker one shard (``shard_size`` x dim floats) and its codes;
the merge holds the growing index (code + 8-byte id per image: ~72 MB at 1M images with
64-byte codes) plus the shard it is merging. The result equals ``CodeIndex("ivfpq:...")
.fit(X)`` on the same vectors and seed: the same sample trains the same quantisers and every
vector lands in the same list, in the same order, with the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._shards import StoreFile, map_shards, sample_rows, split
from imgatlas.errors import ConfigError
from imgatlas.index._codes import CodeIndex, _family, _unit
from imgatlas.index._faiss_util import TRAIN_SAMPLE, set_search_params, train_index
from imgatlas.index._spec import Spec, parse_spec

SHARD_SIZE = defaults.SHARD_SIZE


def check_shardable(spec: Spec) -> None:
    if spec.family != "ivfpq" or spec.smooth or spec.rerank:
        raise ConfigError(f"Sharded index builds take plain ivfpq codes (e.g. ivfpq:64). Got "
                          f"{str(spec)!r}: its other modifiers need every vector at once.")


def build_sharded(source: StoreFile, ids: np.ndarray, codes: str, *, seed: int = 0,
                  shard_size: int = SHARD_SIZE, engine: str = "local",
                  address: str | None = None, num_workers: int | None = None) -> CodeIndex:
    """An IVF-PQ :class:`CodeIndex` over the vectors of ``ids`` (ascending), built in shards.
    Search rows are positions in ``ids``, as for an index fitted in one piece."""
    import faiss

    spec = parse_spec(codes)
    check_shardable(spec)
    n, d = len(ids), source.dim
    family = _family(spec, random_state=seed)
    factory, metric = family.factory_string(d, n)
    index = faiss.index_factory(d, factory, metric)
    rows = sample_rows(n, TRAIN_SAMPLE, seed)  # what fit() trains on (training_sample)
    train_index(index, _unit(source.rows(ids[rows]), copy=False), seed)
    shards = [(ids[a:b], a) for a, b in split(n, shard_size)]
    if engine == "local":
        # one process: each shard straight into the trained index. Serialising it for every
        # shard cost 0.7 s a time at 1M (reading an IVF-PQ back recomputes its 262 MB table
        # of precomputed distances): 22 of the 197 s of the build.
        for shard in shards:
            _add_rows(index, source, *shard)
    else:
        trained = faiss.serialize_index(index)
        for part in map_shards(_add_shard, shards, (trained, source), engine=engine,
                               address=address, num_workers=num_workers):
            index.merge_from(faiss.deserialize_index(part), 0)
    set_search_params(index)
    family.index, family.factory, family.n, family.dim = index, factory, n, d
    ci = CodeIndex(str(spec), random_state=seed)
    ci.spec_, ci.family_ = spec, family
    return ci


def _add_shard(shared: tuple[np.ndarray, StoreFile], shard: tuple[np.ndarray, int]
               ) -> np.ndarray:
    """One shard's codes: the trained, empty index with the shard's vectors added under
    their global row numbers, serialised."""
    import faiss

    trained, source = shared
    index = faiss.deserialize_index(trained)
    _add_rows(index, source, *shard)
    return faiss.serialize_index(index)


def _add_rows(index: Any, source: StoreFile, ids: np.ndarray, start: int) -> None:
    """The vectors of ``ids`` added to ``index`` under their global row numbers."""
    X = _unit(source.rows(ids), copy=False)
    index.add_with_ids(X, np.arange(start, start + len(ids), dtype=np.int64))


def invlists(ci: CodeIndex) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every inverted list's ``(ids, codes)``: what two IVF indexes must share to be equal."""
    import faiss

    ivf = faiss.extract_index_ivf(ci.index_)
    lists = ivf.invlists
    out = []
    for i in range(ivf.nlist):
        size = lists.list_size(i)
        ids = faiss.rev_swig_ptr(lists.get_ids(i), size).copy() if size else np.empty(0)
        codes = (faiss.rev_swig_ptr(lists.get_codes(i), size * lists.code_size).copy()
                 if size else np.empty(0))
        out.append((ids, codes))
    return out


def shard_memory_bytes(dim: int, shard_size: int = SHARD_SIZE) -> int:
    """A worker's float vectors for one shard (what ``shard_size`` bounds)."""
    return int(shard_size) * int(dim) * 4


def describe(meta: dict[str, Any], shard_size: int, engine: str) -> dict[str, Any]:
    return {**meta, "engine": engine, "shard_size": shard_size,
            "shard_memory_mb": round(shard_memory_bytes(meta["dim"], shard_size) / 2**20, 1)}
