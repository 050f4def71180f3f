"""The report's map laid out ahead, in a background thread, while ``run`` inspects and
clusters: the map needs only the features, and it was the report's longest step."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import numpy as np

from imgatlas.report._layout import _save_atomic, lay_out, map_cache, map_method
from imgatlas.store import Workspace


class MapAhead:
    """The map of the images ``ids`` (rows of ``X``, from the store ``store_key``), laid
    out by ``method`` with ``seed`` in a background thread from construction on.
    :meth:`adopt` hands it to a cluster run of exactly those images, as the report would
    have laid it out itself.

    The thread's only shared state is its own copy of ``X``; a failure in it is dropped
    (the report then lays the map out itself), never raised into the run. It is a daemon:
    a run that stops early does not wait for it.
    """

    def __init__(self, ids: np.ndarray, X: np.ndarray, store_key: str, seed: int,
                 method: str = "auto") -> None:
        from sklearn.preprocessing import normalize

        self.ids = np.asarray(ids, dtype=np.int64)
        self.store_key, self.seed = store_key, int(seed)
        self.method = map_method(method, len(self.ids))
        Z = normalize(np.asarray(X, dtype=np.float32))
        self._future: Future[tuple[np.ndarray, str]] = Future()

        def work() -> None:
            if not self._future.set_running_or_notify_cancel():
                return
            try:
                self._future.set_result(lay_out(Z, self.method, self.seed))
            except BaseException as e:  # noqa: BLE001 - handed to adopt(), which drops it
                self._future.set_exception(e)

        threading.Thread(target=work, name="imgatlas-map", daemon=True).start()

    def adopt(self, ws: Workspace, run: dict[str, Any]) -> bool:
        """Wait for the map and keep it as ``run``'s when the run clustered exactly these
        images with this seed (and has no map yet); True when kept."""
        try:
            xy, used = self._future.result()
        except Exception:  # noqa: BLE001 - the report lays the map out itself
            return False
        cache = map_cache(ws, run["id"], self.method)
        if (used != self.method or run["params"].get("derived_from") is not None
                or run["params"].get("seed", 0) != self.seed or cache.exists()
                or ws.run_store(run).key != self.store_key
                or not np.array_equal(ws.assignments(run["id"])[0], self.ids)):
            return False
        _save_atomic(cache, xy)
        return True

    def cancel(self) -> None:
        """Not needed after all: drop the result when it comes."""
        self._future.cancel()


def map_ahead(ws: Workspace, store_key: str, seed: int, *, refit: bool = False,
              most: int) -> MapAhead | None:
    """A :class:`MapAhead` of every image of the store ``store_key`` when the coming
    cluster run will be new (no finished run yet, or ``refit``) and its report maps every
    image (at most ``most``); None otherwise (a rerun keeps its parent's map)."""
    if not refit and any(r["status"] == "done" for r in ws.runs("cluster")):
        return None
    ids, X = ws.pick_store(store_key).read()
    if not 5 <= len(ids) <= most:
        return None
    return MapAhead(ids, X, store_key, seed)
