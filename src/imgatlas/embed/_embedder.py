from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, NamedTuple

import numpy as np

from imgatlas._text import printable
from imgatlas.backbones import Backbone, run_features
from imgatlas.decode import DEFAULT_MAX_PIXELS, decode_rgb, load_rgb, read_file, resize_rgb
from imgatlas.errors import DecodeError

Item = tuple[Hashable, "str | bytes | os.PathLike[str]"]


class Batch(NamedTuple):
    """One batch of :meth:`Embedder.iter_batches`: the keys decoded, their features, the
    keys that failed with why, and what ``measure`` found of each decoded picture (None
    when nothing is measured)."""

    keys: list[Hashable]
    X: np.ndarray
    failures: list[tuple[Hashable, str]]
    measures: list[Any]


class Embedder:
    """Turn image files into ``(n, dim)`` float32 features with one backbone.

    Decoding runs in ``workers`` threads (Pillow releases the GIL while decoding and
    resizing) and stays ``prefetch`` batches ahead of the model, so ONNX Runtime never waits
    for pixels. The ONNX session is created on first use, not in ``__init__``.
    """

    def __init__(self, backbone: Backbone, *, batch_size: int = 32, device: str = "auto",
                 threads: int | None = None, workers: int = 2, prefetch: int = 2,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 decoder: Callable[[Any], np.ndarray] | None = None,
                 measure: Callable[[np.ndarray], Any] | None = None) -> None:
        self.backbone = backbone
        self.batch_size = batch_size
        self.device = device
        self.threads = threads
        self.workers = workers
        self.prefetch = prefetch
        self.max_pixels = max_pixels
        self.decoder = decoder  # path -> pixels at the input size, instead of decode_rgb
        # decoded picture (before the resize to the input size) -> what else is wanted of
        # its pixels, measured in the decode threads while they are in memory
        self.measure = measure
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = self.backbone.session(self.device, self.threads or _cores())
        return self._session

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def decode(self, path: str | bytes | os.PathLike[str]) -> np.ndarray:
        if self.decoder is not None:
            return self.decoder(path)
        cfg = self.backbone.cfg
        return decode_rgb(path, cfg.input_size, max_pixels=self.max_pixels, resize=cfg.resize,
                          interpolation=cfg.interpolation)

    def _decode_and_measure(self, path: str | bytes | os.PathLike[str]
                            ) -> tuple[np.ndarray, Any]:
        if self.measure is None or self.decoder is not None:
            return self.decode(path), None
        cfg = self.backbone.cfg
        picture = load_rgb(read_file(path), cfg.input_size, max_pixels=self.max_pixels,
                           resize=cfg.resize)
        return (resize_rgb(picture, cfg.input_size, cfg.resize, cfg.interpolation),
                self.measure(picture))

    def features(self, pixels: np.ndarray) -> np.ndarray:
        """Features of an ``(n, H, W, 3)`` uint8 batch already at the input size."""
        return run_features(self.session, self.backbone.cfg, pixels)

    def decode_bytes(self, data: bytes) -> np.ndarray:
        """:meth:`decode` of a file's bytes (an upload)."""
        from imgatlas.decode import decode_bytes

        cfg = self.backbone.cfg
        return decode_bytes(data, cfg.input_size, max_pixels=self.max_pixels,
                            resize=cfg.resize, interpolation=cfg.interpolation)

    def iter_batches(self, items: Iterable[Item]) -> Iterator[Batch]:
        """Yield a :class:`Batch` per ``batch_size`` items; a file that fails to decode is
        reported in ``failures`` as ``(key, reason)`` and the rest of its batch goes on."""
        for keys, pixels, failures, measures in self.iter_pixels(items):
            X = (self.features(pixels) if pixels is not None
                 else np.empty((0, self.backbone.cfg.dim), np.float32))
            yield Batch(keys, X, failures, measures)

    def iter_pixels(self, items: Iterable[Item]
                    ) -> Iterator[tuple[list[Hashable], np.ndarray | None,
                                        list[tuple[Hashable, str]], list[Any]]]:
        """``(keys, pixels, failures, measures)`` per ``batch_size`` items, decoded by the
        thread pool ``prefetch`` batches ahead (so decoding overlaps whatever the caller
        runs on each batch); ``pixels`` is None when none of the batch decoded."""
        return decoded_batches(self._decode_and_measure, items, self.batch_size, self.workers,
                               self.prefetch)

    def embed_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Features of ``paths`` in order; raises :class:`DecodeError` naming a bad file."""
        out = np.empty((len(paths), self.backbone.cfg.dim), np.float32)
        for keys, X, failures, _ in self.iter_batches(enumerate(paths)):
            if failures:
                k, reason = failures[0]
                raise DecodeError(f"Cannot read {printable(paths[k])}: {reason}.")
            out[keys] = X
        return out


def decoded_batches(decode: Callable[[Any], tuple[np.ndarray, Any]], items: Iterable[Item],
                batch_size: int, workers: int, prefetch: int
                ) -> Iterator[tuple[list[Hashable], np.ndarray | None,
                                    list[tuple[Hashable, str]], list[Any]]]:
    """What :meth:`Embedder.iter_pixels` yields, for any ``decode(path) -> (pixels,
    measured)``: a file that fails is a ``(key, reason)`` failure, the batch goes on."""
    it = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque[list[tuple[Hashable, Future[tuple[np.ndarray, Any]]]]] = deque()

        def submit_next() -> bool:
            chunk = list(islice(it, batch_size))
            if chunk:
                queue.append([(k, pool.submit(decode, p)) for k, p in chunk])
            return bool(chunk)

        for _ in range(prefetch + 1):
            if not submit_next():
                break
        while queue:
            batch = queue.popleft()
            submit_next()
            keys, arrays, measures, failures = [], [], [], []
            for k, fut in batch:
                try:
                    pixels, measured = fut.result()
                except DecodeError as e:
                    failures.append((k, str(e)))
                    continue
                except MemoryError:
                    failures.append((k, "out of memory while decoding"))
                    continue
                arrays.append(pixels)
                measures.append(measured)
                keys.append(k)
            yield keys, (np.stack(arrays) if arrays else None), failures, measures


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class MultiEmbedder:
    """Several backbones' features side by side, each L2-normalised: images are decoded once,
    at twice the largest input size, and resized to each backbone's size from there."""

    def __init__(self, backbones: list[Backbone], *, batch_size: int = 32, workers: int = 2,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.embedders = [Embedder(b, batch_size=batch_size, workers=workers,
                                   max_pixels=max_pixels) for b in backbones]
        side = 2 * max(max(b.cfg.input_size) for b in backbones)
        self.size = (side, side)
        self.batch_size, self.workers, self.max_pixels = batch_size, workers, max_pixels

    def decode(self, path: str | bytes | os.PathLike[str]) -> np.ndarray:
        return decode_rgb(path, self.size, max_pixels=self.max_pixels)

    def decode_bytes(self, data: bytes) -> np.ndarray:
        from imgatlas.decode import decode_bytes

        return decode_bytes(data, self.size, max_pixels=self.max_pixels)

    def iter_pixels(self, items: Iterable[Item]
                    ) -> Iterator[tuple[list[Hashable], np.ndarray | None,
                                        list[tuple[Hashable, str]], list[Any]]]:
        """As :meth:`Embedder.iter_pixels`, at this embedder's decode size."""
        return decoded_batches(lambda p: (self.decode(p), None), items, self.batch_size,
                               self.workers, 1)

    def features(self, pixels: np.ndarray) -> np.ndarray:
        from sklearn.preprocessing import normalize

        from imgatlas.decode import resize_rgb

        parts = []
        for e in self.embedders:
            cfg = e.backbone.cfg
            small = np.stack([resize_rgb(p, cfg.input_size, cfg.resize, cfg.interpolation)
                              for p in pixels])
            parts.append(normalize(e.features(small)))
        return np.hstack(parts).astype(np.float32)
