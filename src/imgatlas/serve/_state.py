"""What the app loads once per process (the backbone session, the search indexes, the
model) and the questions the pages and the API ask of the workspace. Everything is read
through the workspace's named methods, as the CLI does; nothing here writes SQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._paths import cache_dir_or_default
from imgatlas.decode import DEFAULT_MAX_PIXELS, decode_bytes
from imgatlas.errors import ConfigError, WorkspaceError
from imgatlas.store import ImageRow, Workspace

PER_PAGE = 60


@dataclass
class Settings:
    workspace: Path
    run: int | None = None
    model: Path | None = None
    allow_edits: bool = False
    token: str | None = None
    max_upload: int = defaults.MAX_UPLOAD_MB * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS
    cache_dir: Path | None = None
    csrf_secret: str = field(default_factory=lambda: os.urandom(24).hex())


class AppState:
    """Loaded once per process; thread-safe (requests run in a thread pool)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = cache_dir_or_default(settings.cache_dir)
        self._lock = threading.Lock()
        self._infer = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0))))
        self._embedder: Any = None
        self._index: Any = None
        self._model: Any = None
        self.label_spaces: dict[str, Any] = {}  # the label page's estimate reuses it
        with self.read() as ws:  # fail now, with one line, if it is not a workspace
            ws.pick_store()

    # -- the workspace ---------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Workspace]:
        """A read-only view: never waits for a writer (SQLite WAL)."""
        with Workspace.open(self.settings.workspace) as ws:
            yield ws

    @contextmanager
    def write(self, purpose: str) -> Iterator[Workspace]:
        """The workspace's write lock, without waiting: another writer means 409."""
        with Workspace.open(self.settings.workspace, write=True, wait=0.0,
                            purpose=f"serve: {purpose}") as ws:
            yield ws

    def follow(self, run_id: int) -> None:
        """After a correction (or its undo): show ``run_id`` from now on, when the app was
        started on one fixed run (otherwise the latest run is shown anyway)."""
        if self.settings.run is not None:
            self.settings.run = run_id

    def run_id(self, ws: Workspace) -> int | None:
        try:
            return ws.get_run(self.settings.run, "cluster")["id"]
        except ConfigError:
            if self.settings.run is not None:
                raise
            return None

    # -- loaded once -------------------------------------------------------------------------
    def embedder(self) -> Any:
        """The photos' backbone, checked to still give the workspace's features."""
        with self._lock:
            if self._embedder is None:
                from imgatlas.embed import Embedder
                from imgatlas.index import store_backbone

                with self.read() as ws:
                    store = ws.pick_store()
                # one ONNX Runtime thread per request and at most one request per core in
                # the model: concurrent requests scale instead of fighting for the cores
                self._embedder = Embedder(store_backbone(store, self.cache_dir), batch_size=16,
                                          threads=1)
                self._embedder.session  # noqa: B018 - load the model now, not on a request
            return self._embedder

    def index(self) -> tuple[Any, np.ndarray, str]:
        """The photo search index, or (no index built) an exact one made in memory."""
        with self._lock:
            if self._index is None:
                from imgatlas.index import CodeIndex, load_index

                with self.read() as ws:
                    try:
                        ci, ids, meta = load_index(ws)
                        kind = meta["codes"]
                    except WorkspaceError:
                        ids, X = ws.pick_store().read()
                        ci, kind = CodeIndex("float").fit(X), "float (in memory)"
                self._index = (ci, ids, kind)
            return self._index

    def model(self) -> Any:
        if self.settings.model is None:
            return None
        with self._lock:
            if self._model is None:
                from imgatlas.classify import open_model

                self._model = open_model(self.settings.model, self.cache_dir)
                if self._model.kind != "head":
                    self._model.embedder().session  # noqa: B018 - load it now
            return self._model

    def warm(self) -> None:
        """Load what requests need before the first request, so none pays for it."""
        self.embedder()
        self.index()
        self.model()

    # -- questions ---------------------------------------------------------------------------
    def decode_upload(self, data: bytes) -> np.ndarray:
        size = self.embedder().backbone.cfg.input_size
        return decode_bytes(data, size, max_pixels=self.settings.max_pixels)

    def photo_search(self, pixels: np.ndarray, k: int, data: bytes | None = None
                     ) -> list[dict[str, Any]]:
        """The k images most like ``pixels``; catalogued copies of the upload's bytes
        (``data``) first, marked exact, as ``imgatlas search`` does."""
        import hashlib

        from imgatlas.index import results

        with self._infer:
            X = self.embedder().features(pixels[None])
        ci, ids, _ = self.index()
        with self.read() as ws:
            exact = []
            if data is not None:
                members = set(ids.tolist())
                exact = [i for i in ws.ids_with_sha256(hashlib.sha256(data).hexdigest())
                         if i in members]
            out = results(ws, ci, ids, X, k, ["upload"], [exact],
                          raw=(X, ws.pick_store()))[0]["results"]
            self.annotate(ws, out)
        return out

    def neighbours(self, image_id: int, k: int = 12) -> list[dict[str, Any]]:
        from imgatlas.index import results

        ci, ids, _ = self.index()
        with self.read() as ws:
            store = ws.pick_store()
            have, X = store.read(np.array([image_id]))
            if not len(have):
                return []
            hits = results(ws, ci, ids, X, k + 1, ["id"], raw=(X, store))[0]["results"]
            hits = [h for h in hits if h["id"] != image_id][:k]
            self.annotate(ws, hits)
        return hits

    def sketch_search(self, data: bytes, k: int) -> tuple[list[dict[str, Any]], str]:
        """Photos for a drawing: through the sketch index when one is built, else the
        drawing's normalised line image searched as a photo (and the answer says which)."""
        from imgatlas.sketch import sketch_pixels

        with self.read() as ws:
            from imgatlas.index import index_dir

            has_sketch_index = index_dir(ws, "sketch").exists()
        if has_sketch_index:
            from imgatlas.sketch import search_sketch

            with self.read() as ws:
                out = search_sketch(ws, [data], k=k, cache_dir=self.cache_dir,
                                    as_built=True)[0]["results"]
                self.annotate(ws, out)
            return out, "sketch index"
        size = self.embedder().backbone.cfg.input_size[0]
        return self.photo_search(sketch_pixels(data, size), k), "drawing searched as a photo"

    def classify(self, pixels_or_data: bytes) -> dict[str, Any] | None:
        m = self.model()
        if m is None:
            return None
        emb = m.embedder()
        pixels = emb.decode_bytes(pixels_or_data)[None]
        logits, feats = m.logits_and_features(pixels)
        return m.predict_features(logits, feats, ["upload"])[0]

    def annotate(self, ws: Workspace, hits: list[dict[str, Any]]) -> None:
        """Each hit's cluster in the app's run, and its label (a person's, else the
        folder's)."""
        run = self.run_id(ws)
        ids = [h["id"] for h in hits]
        user = ws.user_labels(ids)
        clusters = ws.clusters_of(run, ids) if run is not None else {}
        for h in hits:
            h["cluster"] = clusters.get(h["id"])
            h["label"] = user.get(h["id"], h.get("label"))


def image_file(row: ImageRow) -> str | None:
    """The image's file if it is really inside the folder it was scanned from (a symlink
    pointing out of the collection is refused), else None."""
    if row.root is None:
        return None
    real = os.path.realpath(row.path)
    root = os.path.realpath(row.root)
    if os.path.commonpath([real, root]) != root or not os.path.isfile(real):
        return None
    return os.fsdecode(real)
