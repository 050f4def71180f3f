"""Work over a feature store in shards: the rows of a store read straight from its file (a
worker needs no workspace connection), and a map over shards run in this process or as Ray
tasks, results in shard order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.errors import ConfigError, ImgatlasError

ENGINES = defaults.ENGINES


@dataclass(frozen=True)
class StoreFile:
    """Where a feature store's vectors are: row ``id - 1`` holds image ``id``."""

    path: str
    dtype: str
    dim: int

    @classmethod
    def of(cls, store: Any) -> StoreFile:
        return cls(str(store.path), str(store.dtype), int(store.dim))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors of ``ids`` (ascending)."""
        from imgatlas.store.features import read_rows

        X = read_rows(self.path, self.dtype, self.dim, np.asarray(ids, dtype=np.int64) - 1)
        return X if X.dtype == np.float32 else X.astype(np.float32)


def split(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges of at most ``shard_size``."""
    if shard_size < 1:
        raise ConfigError(f"shard_size must be an int >= 1. Got {shard_size} instead.")
    return [(i, min(i + shard_size, n)) for i in range(0, n, shard_size)]


def sample_rows(n: int, size: int, seed: int | None) -> np.ndarray:
    """Sorted positions of a seeded sample of ``size`` out of ``n`` (all when ``n <= size``):
    the one sampling rule of every fit-on-a-sample step, so a sharded build and a one-piece
    fit draw the same rows."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def check_engine(engine: str) -> None:
    """A known engine, and Ray importable when it is asked for: checked before a workspace
    is locked or anything is built."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}. Got {engine!r} instead.")
    if engine == "ray":
        require_ray()


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data; pip install 'imgatlas[ray]'.") from None
    return ray


def connect_ray(ray: Any, address: str | None) -> bool:
    """Join ``address`` (or start a local cluster); True when this call started Ray."""
    import logging

    for name in ("ray", "ray.data"):  # imgatlas reports progress and errors itself
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"Cannot reach the Ray cluster {address!r}: {one_line(e)}") from e
    return True


def one_line(e: BaseException) -> str:
    """The last line of an error Ray wraps (its own traceback comes first)."""
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


def map_shards(fn: Callable[..., Any], shards: list[Any], shared: Any = None, *,
               engine: str = "local", address: str | None = None,
               num_workers: int | None = None) -> Iterator[Any]:
    """``fn(shared, shard)`` for every shard, in order. On Ray, ``shared`` is put in the
    object store once and at most ``num_workers`` shards (default: the cluster's cores) are
    in flight, which bounds the memory the results hold."""
    check_engine(engine)
    if engine == "local":
        for shard in shards:
            yield fn(shared, shard)
        return
    ray = require_ray()
    started = connect_ray(ray, address)
    try:
        slots = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1)(fn)
        ref = ray.put(shared)
        pending: list[Any] = []
        try:
            for shard in shards:
                pending.append(task.remote(ref, shard))
                if len(pending) >= slots:
                    yield ray.get(pending.pop(0))
            while pending:
                yield ray.get(pending.pop(0))
        except ray.exceptions.RayError as e:
            raise ImgatlasError(f"The Ray engine failed: {one_line(e)}") from e
    finally:
        if started:
            ray.shutdown()
