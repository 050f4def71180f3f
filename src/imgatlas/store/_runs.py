"""Runs: every stage that changes or scores the workspace records one, through one bracket.

``with ws.recording(kind, params, seed=..., inputs=...) as run:`` records the start
(parameters, seed, version, input fingerprint), lets the stage add its estimators
(``run.estimator(name, est)``) and results (``run.results``), and on leaving:

- normally: the run is ``done`` with its results, in one transaction;
- by an exception: the run is ``failed`` (``interrupted`` for Ctrl-C/SIGTERM) with a
  one-line reason, and whatever the stage had written under the run's id (cluster
  assignments, centre distances) is deleted, so no half-written run is ever left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from imgatlas.errors import ConfigError, ImgatlasError

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace

RUN_COLUMNS = "id, kind, status, started_at, finished_at, version, params, results, error"


def fingerprint(ids: np.ndarray | list[int], *extra: str) -> str:
    """The input fingerprint of a run: which images (ids), and what of them (a store key)."""
    h = hashlib.sha1(np.asarray(ids, dtype="<i8").tobytes())
    for e in extra:
        h.update(b"\0" + e.encode())
    return h.hexdigest()


def plain_params(est: Any) -> dict[str, Any]:
    """An estimator's ``get_params(deep=True)``, keeping JSON-able values: a Pipeline's
    steps appear through their ``step__param`` entries."""
    out: dict[str, Any] = {"class": type(est).__name__}
    for k, v in est.get_params(deep=True).items():
        if isinstance(v, bool | int | float | str | type(None)):
            out[k] = v
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, list | tuple) and all(isinstance(x, int | float | str) for x in v):
            out[k] = list(v)
    return out


def one_line(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    msg = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, ImgatlasError):
        return msg or type(e).__name__
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class RunRecord:
    """The run being recorded: its id, the estimators it used and its results."""

    def __init__(self, ws: Workspace, run_id: int, kind: str, params: dict[str, Any]) -> None:
        self.ws = ws
        self.id = run_id
        self.kind = kind
        self.params = params
        self.results: dict[str, Any] = {}
        self.estimators: dict[str, dict[str, Any]] = {}

    def estimator(self, name: str, est: Any) -> None:
        """Record ``est.get_params()`` under ``name`` (a fitted or configured estimator)."""
        if est is not None:
            self.estimators[name] = plain_params(est)


class RunsMixin:
    """Run records of a :class:`~imgatlas.store.Workspace`."""

    _con: Any

    @contextlib.contextmanager
    def recording(self: Workspace, kind: str, params: dict[str, Any], *,
                  seed: int | None = None, inputs: str | None = None
                  ) -> Iterator[RunRecord]:
        """Record one run of ``kind`` around the block (see the module docstring)."""
        from imgatlas._version import __version__

        full = {**params, "seed": seed, "inputs": inputs}
        with self.transaction("recording a run"):
            cur = self._con.execute(
                "INSERT INTO runs(kind, status, started_at, version, params) "
                "VALUES (?, 'running', ?, ?, ?)",
                (kind, time.time(), __version__, _dumps(full)))
        run = RunRecord(self, int(cur.lastrowid), kind, full)
        try:
            yield run
        except GeneratorExit:
            # the bracket was abandoned, not left: as if the process died here; the next
            # write-open marks the run interrupted
            raise
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            self._end_run(run, status, one_line(e))
            raise
        self._end_run(run, "done", None)

    def _end_run(self: Workspace, run: RunRecord, status: str, error: str | None) -> None:
        params = {**run.params, "estimators": run.estimators} if run.estimators else run.params
        with self.transaction("recording a run"):
            if status != "done":
                self._delete_run_rows(run.id)
            self._con.execute(
                "UPDATE runs SET status=?, finished_at=?, params=?, results=?, error=? "
                "WHERE id=?",
                (status, time.time(), _dumps(params), _dumps(run.results), error, run.id))

    def _delete_run_rows(self: Workspace, run_id: int) -> None:
        for table in ("assignments", "centre_distance", "cluster_names"):
            self._con.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))  # noqa: S608

    def runs(self: Workspace, kind: str | None = None) -> list[dict[str, Any]]:
        """Every run (of ``kind``), oldest first."""
        q = f"SELECT {RUN_COLUMNS} FROM runs"
        args: tuple[Any, ...] = ()
        if kind:
            q += " WHERE kind=?"
            args = (kind,)
        return [_run_dict(r) for r in self._con.execute(q + " ORDER BY id", args)]

    def get_run(self: Workspace, run_id: int | None, kind: str) -> dict[str, Any]:
        """Run ``run_id`` of ``kind``, or the latest finished one; a ConfigError if none."""
        if run_id is None:
            row = self._con.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE kind=? AND status='done' "
                "ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
            if row is None:
                raise ConfigError(f"Workspace {self.path} has no finished {kind} run yet.")
            return _run_dict(row)
        row = self._con.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE kind=? AND id=?",
                                (kind, int(run_id))).fetchone()
        if row is None:
            raise ConfigError(f"Workspace {self.path} has no {kind} run with id {run_id}.")
        return _run_dict(row)

    def find_done_run(self: Workspace, kind: str, params: dict[str, Any]
                      ) -> dict[str, Any] | None:
        """The latest finished run of ``kind`` asked with exactly ``params`` (estimators
        recorded at the end are not part of the question)."""
        for r in reversed(self.runs(kind)):
            asked = {k: v for k, v in r["params"].items() if k != "estimators"}
            if r["status"] == "done" and asked == json.loads(_dumps(params)):
                return r
        return None

    def set_run_status(self: Workspace, run_id: int, status: str) -> None:
        """Mark a finished run (e.g. ``undone``: a correction taken back; its rows stay, so
        nothing is lost and it can be looked at by id)."""
        with self.transaction("recording a run"):
            self._con.execute("UPDATE runs SET status=? WHERE id=?", (status, int(run_id)))

    def update_results(self: Workspace, run_id: int, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into a finished run's results (e.g. a later evaluation)."""
        with self.transaction("recording results"):
            row = self._con.execute("SELECT results FROM runs WHERE id=?",
                                    (run_id,)).fetchone()
            results = json.loads(row[0]) if row and row[0] else {}
            results.update(extra)
            self._con.execute("UPDATE runs SET results=? WHERE id=?",
                              (_dumps(results), run_id))


def _run_dict(r: tuple) -> dict[str, Any]:
    return {"id": r[0], "kind": r[1], "status": r[2], "started_at": r[3],
            "finished_at": r[4], "version": r[5], "params": json.loads(r[6]),
            "results": json.loads(r[7]) if r[7] else None, "error": r[8]}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_default)


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
