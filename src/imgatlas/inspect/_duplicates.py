"""Near-duplicate pairs between the new images and the whole collection: candidates searched
shard by shard (:mod:`~imgatlas.inspect._candidates`, in this process or on Ray), the
shards' pairs merged and decided by :mod:`~imgatlas.inspect._rules`, the doubtful ones
verified geometrically (:mod:`~imgatlas.inspect._verify`) on threads.

Memory: the search space (:mod:`~imgatlas.inspect._space`), the hashes (88 bytes an image)
and one shard's vectors at a time; the kept pairs are a few per image at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from imgatlas._shards import map_shards, split
from imgatlas.inspect._candidates import Collection, Found, search_shard
from imgatlas.inspect._rules import K_NEIGHBOURS, Pair, PairMeasures, decide, hints, similarity
from imgatlas.inspect._space import SearchSpace
from imgatlas.inspect._verify import Verifier

VERIFY_THREADS = 2  # OpenCV's keypoints and matching release the GIL
SHARD_SIZE = 32_768  # new images per search shard (their vectors: 160 MB at 1280-d)


@dataclass
class Compared:
    """What comparing the new rows found."""

    pairs: list[Pair]
    rows: np.ndarray  # the new rows
    neighbours: np.ndarray  # (len(rows), K_NEIGHBOURS) similarities, NaN-padded
    reverse: np.ndarray  # (p, 3): (older row, new row, similarity)


def search(space: SearchSpace, c: Collection, new_rows: np.ndarray, *,
           engine: str = "local", address: str | None = None,
           num_workers: int | None = None, shard_size: int = SHARD_SIZE,
           progress: Callable[[int], None] | None = None) -> Iterator[Found]:
    """Every new row searched against the collection, one shard at a time (on Ray: in
    parallel), in row order."""
    shards = [new_rows[a:b] for a, b in split(len(new_rows), shard_size)]
    for found in map_shards(search_shard, shards, (space, c), engine=engine,
                            address=address, num_workers=num_workers):
        if progress is not None:
            progress(len(found.rows))
        yield found


def find_pairs(space: SearchSpace, c: Collection, new_rows: np.ndarray,
               verifier: Callable[[np.ndarray], Verifier], *, engine: str = "local",
               address: str | None = None, num_workers: int | None = None,
               shard_size: int = SHARD_SIZE,
               searched: Callable[[int], None] | None = None,
               verified: Callable[[int], None] | None = None) -> Compared:
    """The near-duplicate pairs between each new row and the whole collection, in image ids,
    and each new row's similarities to its nearest other images. ``verifier(ids)``: a
    verifier that knows the files of ``ids``."""
    new_rows = np.sort(np.asarray(new_rows, dtype=np.int64))
    nearest = np.full(len(space.ids), -1, np.int64)
    parts, neighbours, reverse = [], [], []
    for found in search(space, c, new_rows, engine=engine, address=address,
                        num_workers=num_workers, shard_size=shard_size, progress=searched):
        nearest[found.rows] = found.nearest
        parts.append(found.pairs)
        neighbours.append(found.neighbours)
        reverse.append(found.reverse)
    m = PairMeasures.concat(parts)
    # a pair found from both its images' shards: once
    _, first = np.unique(np.stack([m.i, m.j], 1), axis=0, return_index=True)
    m = m.take(np.sort(first))
    # each other's nearest (an older image's nearest is not known: its side is taken as yes)
    na, nb = nearest[m.i], nearest[m.j]
    rank1 = ((na == m.j) | (na < 0)) & ((nb == m.i) | (nb < 0)) & ((na >= 0) | (nb >= 0))
    sure, zone = decide(m, rank1)
    mirror, framed = hints(m, rank1)
    ids = space.ids
    pairs = []
    for k in np.flatnonzero(sure):
        a, b = int(ids[m.i[k]]), int(ids[m.j[k]])
        d, cs = int(m.hash_distance[k]), float(m.cosine[k])
        pairs.append(Pair(a, b, 1.0, cs, d, "same bytes") if m.same[k] else
                     Pair(a, b, similarity(cs, d), cs, d,
                          f"hash {d} bits apart, features {cs:.2f}"))
    todo = np.flatnonzero(zone)
    v = verifier(np.unique(np.concatenate([ids[m.i[todo]], ids[m.j[todo]]])))

    def verify(k: int) -> Pair | None:
        a, b = int(ids[m.i[k]]), int(ids[m.j[k]])
        d, cs = int(m.hash_distance[k]), float(m.cosine[k])
        verdict = v.match(a, b, mirror=bool(mirror[k]), framed=bool(framed[k]))
        if verified is not None:
            verified(1)
        if verdict is not None and verdict.same_photo:
            return Pair(a, b, similarity(cs, d), cs, d, verdict.evidence)
        return None

    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        pairs += [p for p in pool.map(verify, todo.tolist()) if p is not None]
    return Compared(pairs, new_rows,
                    np.concatenate(neighbours) if neighbours else
                    np.zeros((0, K_NEIGHBOURS), np.float32),
                    np.concatenate(reverse) if reverse else np.zeros((0, 3)))
