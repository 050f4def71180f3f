"""The label-propagate and suggest-labels stages over a workspace."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas.classify._labels import resolve_labels
from imgatlas.classify._propagate import label_curve, propagate, suggest
from imgatlas.errors import ConfigError
from imgatlas.store import Workspace, fingerprint, io_errors


def propagate_workspace(ws: Workspace, *, labels: str = "user", out: Path | None = None,
                        apply: bool = False, features: str | None = None,
                        seed: int = defaults.SEED) -> dict[str, Any]:
    """Spread the given labels to every image; report the accuracy-vs-labels curve measured
    by holding given labels back; write the result to ``out`` (CSV) and, with ``apply``,
    into the workspace as labels from source ``propagated``."""
    store = ws.pick_store(features)
    lab = resolve_labels(ws, labels)
    ids, X = store.read()
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], c) for i, c in zip(lab.ids, lab.labels, strict=True) if i in row_of]
    if not pairs:
        raise ConfigError("None of the labelled images has features; run 'imgatlas embed'.")
    classes = sorted({c for _, c in pairs})
    if len(classes) < 2:
        raise ConfigError(f"Spreading needs at least 2 classes; the labels hold one "
                          f"({classes[0]!r}).")
    seeds = np.array([r for r, _ in pairs])
    y = np.array([classes.index(c) for _, c in pairs])
    params = {"labels": lab.source, "features": store.key, "out": str(out) if out else None,
              "apply": apply}
    with ws.recording("label-propagate", params, seed=seed,
                      inputs=fingerprint(ids, store.key)) as run:
        pred, conf = propagate(X, seeds, y, len(classes))
        # held back: seeds drawn from the given labels, scored on the other given labels
        curve = label_curve(X[seeds], y, len(classes), seed=seed)
        info = ws.display_and_label()
        rows = [{"id": int(i), "path": info[int(i)][0], "label": classes[p],
                 "confidence": round(float(c), 4), "given": r in set(seeds.tolist())}
                for r, (i, p, c) in enumerate(zip(ids, pred, conf, strict=True))]
        if out is not None:
            with io_errors(f"writing {out}"), open(out, "w", newline="",
                                                   encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=["id", "path", "label", "confidence",
                                                  "given"])
                w.writeheader()
                w.writerows(rows)
        applied = 0
        if apply:
            given = set(ids[seeds].tolist())
            applied = ws.set_user_labels(((r["id"], r["label"]) for r in rows
                                          if r["id"] not in given), "propagated")
        run.results = {"n_given": int(len(seeds)), "n_images": int(len(ids)),
                       "classes": classes, "curve": curve, "out": str(out) if out else None,
                       "applied": applied, "run_id": run.id,
                       "label_counts": {c: int((pred == k).sum())
                                        for k, c in enumerate(classes)}}
    return run.results


def estimate_workspace(ws: Workspace, *, labels: str = "user", features: str | None = None,
                       seed: int = defaults.SEED) -> dict[str, Any] | None:
    """The estimated share of the collection that spreading the labels would get right
    (see :func:`estimate_accuracy`); None while there are too few labels."""
    from imgatlas.classify._propagate import estimate_accuracy

    ids, X = ws.pick_store(features).read()
    try:
        lab = resolve_labels(ws, labels)
    except ConfigError:
        return None
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], c) for i, c in zip(lab.ids, lab.labels, strict=True) if i in row_of]
    if not pairs:
        return None
    return estimate_accuracy(X, np.array([r for r, _ in pairs]),
                             np.array([c for _, c in pairs]), seed)


def suggest_workspace(ws: Workspace, *, n: int = 20, labels: str = "user",
                      features: str | None = None, seed: int = defaults.SEED
                      ) -> list[dict[str, Any]]:
    """Which ``n`` images a person should label next (see :func:`suggest`)."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1. Got {n} instead.")
    store = ws.pick_store(features)
    ids, X = store.read()
    try:
        lab = resolve_labels(ws, labels)
        row_of = {int(i): r for r, i in enumerate(ids)}
        pairs = [(row_of[i], c) for i, c in zip(lab.ids, lab.labels, strict=True)
                 if i in row_of]
    except ConfigError:  # nothing labelled yet: cover the collection
        pairs = []
    labelled = np.array([r for r, _ in pairs], int)
    picks = suggest(X, labelled, np.array([c for _, c in pairs]), n, seed=seed)
    info = ws.display_and_label()
    return [{"id": int(ids[p["row"]]), "path": info[int(ids[p["row"]])][0],
             "reason": p["reason"], "margin": p["margin"], "group": p["group"]}
            for p in picks]
