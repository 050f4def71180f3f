"""The label-propagate and suggest-labels stages over a workspace."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.classify._choose import choose, estimate_accuracy, label_curve
from imgatlas.classify._features import read_features, second_store
from imgatlas.classify._labels import resolve_labels
from imgatlas.classify._propagate import LabelSpace, propagate_proba
from imgatlas.classify._suggest import suggest
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace, fingerprint, io_errors

METHODS = defaults.PROPAGATION_METHODS


@dataclass
class _Given:
    """The labels that count: rows of the features, their labels, and notes on what was
    left out or is worth knowing. ``Xc``: the features the collection is clustered on (the
    first store's), None when they are ``X``."""

    ids: np.ndarray
    X: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    notes: list[str]
    source: str
    store: str
    Xc: np.ndarray | None = None

    def space(self, seed: int) -> LabelSpace:
        return LabelSpace(np.asarray(self.X), seed, cluster_X=self.Xc)


def _read(ws: Workspace, features: str | None) -> tuple[str, np.ndarray, np.ndarray,
                                                         np.ndarray | None]:
    """``(store key, ids, X, Xc)``: ``features`` (a store key or backbone, or several,
    comma-separated, read side by side); by default the default store, with the second
    backbone's beside it when the workspace holds one (``train``'s default head and
    ``label-propagate`` make it when the lite extra is installed)."""
    if features:
        stores = [ws.pick_store(f.strip()) for f in features.split(",")]
    else:
        base = ws.pick_store()
        second = second_store(ws, base)
        stores = [base] if second is None else [base, second]
    ids, X = read_features(stores)
    # the first store's block: its features L2-normalised, as the clustering space's own
    # first step makes them
    Xc = None if len(stores) == 1 else X[:, :stores[0].dim]
    return "+".join(s.key for s in stores), ids, X, Xc


def _given(ws: Workspace, labels: str, features: str | None, *, strict: bool = True
           ) -> _Given:
    """The features and the labelled rows among them; ``strict``: a one-line refusal when
    there are none, else empty labels."""
    key, ids, X, Xc = _read(ws, features)
    try:
        lab = resolve_labels(ws, labels)
    except ConfigError:
        if strict:
            raise
        return _Given(ids, X, np.array([], np.int64), np.array([]), [], labels, key, Xc)
    notes = list(lab.notes)
    if labels == "user":
        gone = ws.unusable_user_labels()
        if gone:
            notes.append(f"{len(gone)} label(s) are on images no longer usable (first: image "
                         f"{next(iter(gone))}, {next(iter(gone.values()))}): left out")
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], c) for i, c in zip(lab.ids, lab.labels, strict=True) if i in row_of]
    if len(pairs) < len(lab.ids):
        notes.append(f"{len(lab.ids) - len(pairs)} labelled image(s) have no features in "
                     f"{key}: left out (run 'imgatlas embed')")
    if not pairs and strict:
        raise ConfigError("None of the labelled images has features; run 'imgatlas embed'.")
    flagged = _flagged(ws) & {int(ids[r]) for r, _ in pairs}
    if flagged:
        notes.append(f"{len(flagged)} label(s) are on images inspect set apart (near-"
                     "duplicate copies or flagged): kept, a label a person gave is taken as "
                     "true")
    return _Given(ids, X, np.array([r for r, _ in pairs], np.int64),
                  np.array([c for _, c in pairs]), notes, lab.source, key, Xc)


def _flagged(ws: Workspace) -> set[int]:
    """Images the latest inspection sets apart (copies of near-duplicates, flags)."""
    from imgatlas.inspect import excluded_ids, exclusion_names, latest_inspection

    return excluded_ids(ws, exclusion_names()) if latest_inspection(ws) is not None else set()


def propagate_workspace(ws: Workspace, *, labels: str = "user", out: Path | None = None,
                        apply: bool = False, features: str | None = None,
                        method: str = "auto", seed: int = defaults.SEED) -> dict[str, Any]:
    """Spread the given labels to every image by ``method`` (``auto``: the one the labels
    favour, :func:`~imgatlas.classify._choose.choose`); report the choice with its estimate,
    and the accuracy-vs-labels curve measured by holding given labels back; write the result
    to ``out`` (CSV, atomically) and, with ``apply``, into the workspace as labels from
    source ``propagated`` (one transaction)."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}. Got {method!r}.")
    g = _given(ws, labels, features)
    classes = sorted(set(g.labels.tolist()))
    if len(classes) < 2:
        raise ConfigError(f"Spreading needs at least 2 classes; the labels hold one "
                          f"({classes[0]!r}).")
    y = np.searchsorted(classes, g.labels)
    params = {"labels": g.source, "features": g.store, "out": str(out) if out else None,
              "apply": apply, "method": method}
    with ws.recording("label-propagate", params, seed=seed,
                      inputs=fingerprint(g.ids, g.store)) as run:
        space = g.space(seed)
        choice = choose(space, g.rows, y, seed=seed,
                        methods=None if method == "auto" else (method,))
        P = propagate_proba(choice["method"], space, g.rows, y, len(classes))
        pred, conf = P.argmax(1), P.max(1)
        pred[g.rows], conf[g.rows] = y, 1.0  # a given label stands
        # held back: seeds drawn from the given labels, scored on the other given labels
        curve = label_curve(g.X[g.rows], y, len(classes), seed=seed)
        info = ws.display_and_label()
        given = set(g.rows.tolist())
        rows = [{"id": int(i), "path": info[int(i)][0], "label": classes[p],
                 "confidence": round(float(c), 4), "given": r in given}
                for r, (i, p, c) in enumerate(zip(g.ids, pred, conf, strict=True))]
        if out is not None:
            _write_csv(out, rows)
        applied = 0
        if apply:
            given_ids = set(g.ids[g.rows].tolist())
            applied = ws.set_user_labels(((r["id"], r["label"]) for r in rows
                                          if r["id"] not in given_ids), "propagated")
        run.results = {"n_given": int(len(g.rows)), "n_images": int(len(g.ids)),
                       "classes": classes, "method": choice["method"],
                       "estimate": choice["estimate"], "estimates": choice["estimates"],
                       "choice": choice["reason"], "curve": curve,
                       "out": str(out) if out else None, "applied": applied,
                       "run_id": run.id, "notes": g.notes,
                       "label_counts": {c: int((pred == k).sum())
                                        for k, c in enumerate(classes)}}
    return run.results


def _write_csv(out: Path, rows: list[dict[str, Any]]) -> None:
    """All of it or nothing: a temporary file beside ``out``, moved into place."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with io_errors(f"writing {out}"):
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=["id", "path", "label", "confidence",
                                                  "given"])
                w.writeheader()
                w.writerows(rows)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)


def estimate_workspace(ws: Workspace, *, labels: str = "user", features: str | None = None,
                       seed: int = defaults.SEED, spaces: dict[str, LabelSpace] | None = None
                       ) -> dict[str, Any] | None:
    """The estimated share of the collection that spreading the labels would get right, by
    the method the labels favour (see :func:`estimate_accuracy`); None while there are too
    few labels. ``spaces``: a cache of the collection's clustering space and graph (they
    depend on the features only) that a caller asking again and again keeps (the web app's
    label page asks after every label; at 10,000 images they take seconds)."""
    g = _given(ws, labels, features, strict=False)
    if not len(g.rows):
        return None
    key = f"{fingerprint(g.ids, g.store)}:{seed}"
    space = spaces.get(key) if spaces is not None else None
    if space is None:
        space = g.space(seed)
        if spaces is not None:
            spaces.clear()  # one collection at a time: the latest
            spaces[key] = space
    return estimate_accuracy(g.X, g.rows, g.labels, seed, space=space)


def suggest_workspace(ws: Workspace, *, n: int = 20, labels: str = "user",
                      features: str | None = None, seed: int = defaults.SEED
                      ) -> list[dict[str, Any]]:
    """Which ``n`` images a person should label next (see :func:`suggest`); fewer when
    fewer are without a label. Near-duplicate copies and flagged images are passed over."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1. Got {n} instead.")
    g = _given(ws, labels, features, strict=False)
    flagged = _flagged(ws)
    avoid = np.array([r for r, i in enumerate(g.ids) if int(i) in flagged], np.int64)
    picks = suggest(g.X, g.rows, g.labels, n, seed=seed, avoid=avoid, space=g.space(seed))
    info = ws.display_and_label()
    return [{"id": int(g.ids[p["row"]]), "path": info[int(g.ids[p["row"]])][0],
             "reason": p["reason"], "margin": p["margin"], "group": p["group"]}
            for p in picks]
