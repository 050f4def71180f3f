"""Using a model folder: predict images, score it on labelled data, compare two models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._text import printable
from imgatlas.classify._model import Model, Rule
from imgatlas.errors import ConfigError, DecodeError
from imgatlas.evaluate.classification import classification_scores

PathLike = str | os.PathLike[str]


def predict_files(model: Model, files: list[PathLike], *, k: int = 3,
                  min_probability: float | None = None, min_similarity: float | None = None,
                  evidence: int = 3) -> list[dict[str, Any]]:
    """The prediction JSON of each file (see :meth:`Model.predict_features`)."""
    if k < 1:
        raise ConfigError(f"--k must be at least 1. Got {k} instead.")
    _override_rule(model, min_probability, min_similarity)
    logits, X, names, failures = _run(model, [os.fspath(f) for f in files])
    if failures:
        name, reason = failures[0]
        raise DecodeError(f"Cannot read {name}: {reason}.")
    return model.predict_features(logits, X, names, k=k, evidence=evidence)


def _override_rule(model: Model, min_probability: float | None,
                   min_similarity: float | None) -> None:
    for name, v in (("min_probability", min_probability), ("min_similarity", min_similarity)):
        if v is not None and not -1.0 <= v <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [-1, 1]. Got {v}.")
    model.rule = Rule(model.rule.min_probability if min_probability is None else min_probability,
                      model.rule.min_similarity if min_similarity is None else min_similarity)


def _run(model: Model, paths: list[str | bytes]
         ) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """Logits and features of every file that decodes, and (name, reason) of the others."""
    emb = model.embedder()
    L, F, names = [], [], []
    failures = []
    for keys, pixels, bad, _ in emb.iter_pixels(enumerate(paths)):
        failures += [(printable(paths[i]), reason) for i, reason in bad]
        if len(keys):
            logits, feats = model.logits_and_features(pixels)
            L.append(logits)
            F.append(feats)
            names += [printable(paths[i]) for i in keys]
    n_classes = len(model.classes)
    logits = np.concatenate(L) if L else np.empty((0, n_classes), np.float32)
    feats = np.concatenate(F) if F else np.empty((0, 1), np.float32)
    return logits, feats, names, failures


# -- scoring on labelled data ----------------------------------------------------------------
def labelled_data(data: PathLike) -> tuple[list[str | bytes], list[str], list[str | None], str]:
    """Files, labels and content hashes of DATA: a workspace (its usable images with a
    label: a person's label first, else the folder's) or a folder with one subfolder per
    class."""
    from imgatlas.store import Workspace

    root = Path(data)
    if (root / "catalog.sqlite").is_file():
        with Workspace.open(root) as ws:
            user = ws.user_labels()
            rows = [(r.path, user.get(r.id, r.label), r.sha256) for r in ws.images()
                    if user.get(r.id, r.label) is not None]
        if not rows:
            raise ConfigError(f"Workspace {printable(root)} has no labelled images.")
        return ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                "workspace")
    if not root.is_dir():
        raise ConfigError(f"DATA must be a workspace or a folder of class folders; "
                          f"{printable(root)} is neither.")
    from imgatlas.scan import walk

    files, labels = [], []
    for found in walk(os.fsencode(root.resolve()), frozenset()):
        if found.label is None or found.problem:
            continue
        files.append(found.path)
        labels.append(found.label)
    if not files:
        raise ConfigError(f"No images in class subfolders of {printable(root)}.")
    return files, labels, [None] * len(files), "folder"


def score_model(model: Model, data: PathLike) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class P/R/F1, confusion matrix, ECE on DATA. Images
    the model learned from (same content hash) are left out and counted, and so are images
    of classes the model does not know (it cannot be right on them: scoring them would
    measure the data, not the model); DATA with none of its classes is refused. Returns the
    per-image outcomes too (``_images``)."""
    from imgatlas._hashing import sha256_file

    files, labels, shas, kind = labelled_data(data)
    taught = set(_taught(model))
    keep = []
    for n, (f, sha) in enumerate(zip(files, shas, strict=True)):
        if taught:
            sha = sha or _safe_sha(sha256_file, f)
        if sha in taught:
            continue
        keep.append(n)
    excluded = len(files) - len(keep)
    classes = list(model.classes)
    unknown: dict[str, int] = {}
    for n in keep:
        if labels[n] not in classes:
            unknown[labels[n]] = unknown.get(labels[n], 0) + 1
    if keep and len(unknown) and all(labels[n] in unknown for n in keep):
        raise ConfigError(
            f"None of the classes of {printable(data)} ({_some(sorted(unknown))}) is one the "
            f"model {model.name} knows ({_some(classes)}).")
    keep = [n for n in keep if labels[n] not in unknown]
    files = [files[n] for n in keep]
    labels = [labels[n] for n in keep]
    if not files:
        raise ConfigError(f"Every labelled image of {printable(data)} was used to train "
                          "the model; nothing is left to score it on.")
    logits, X, names, failures = _run(model, files)
    unreadable = {a for a, _ in failures}
    ok = [n for n, f in enumerate(files) if printable(f) not in unreadable]
    y_names = [labels[n] for n in ok]
    y = np.array([classes.index(c) for c in y_names])
    P = model.probabilities(logits)
    pred = P.argmax(1)
    out = classification_scores(y, pred, classes, P)
    out.update({"model": model.name, "data": printable(data), "data_kind": kind,
                "n_excluded_training": excluded, "n_unreadable": len(failures),
                "unknown_classes": sorted(unknown),
                "n_unknown_class": int(sum(unknown.values()))})
    out["_images"] = {"names": names, "correct": (pred == y).tolist(),
                      "labels": y_names, "predicted": [classes[j] for j in pred],
                      "probability": P.max(1).tolist()}
    return out


def _some(names: list[str], n: int = 5) -> str:
    shown = ", ".join(printable(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _taught(model: Model) -> list[str]:
    split = model.meta.get("split", {})
    if "folds" in split:
        return sorted({s for f in split["folds"] for s in f.get("taught_sha256", [])})
    return split.get("taught_sha256", [])


def _safe_sha(fn: Any, path: str | bytes) -> str | None:
    try:
        return fn(path)
    except OSError:
        return None


def compare(model_a: Model, model_b: Model, data: PathLike, method: str = "auto"
            ) -> dict[str, Any]:
    """McNemar's test of two models on the same images of DATA."""
    from imgatlas import defaults
    from imgatlas.evaluate.mcnemar import accuracy_difference, contingency, mcnemar

    if method not in defaults.MCNEMAR_METHODS:
        raise ConfigError(f"method must be one of {', '.join(defaults.MCNEMAR_METHODS)}. "
                          f"Got {method!r} instead.")
    a, b = score_model(model_a, data), score_model(model_b, data)
    ia, ib = a["_images"], b["_images"]
    if ia["names"] != ib["names"]:
        only = sorted(set(ia["names"]) ^ set(ib["names"]))
        raise ConfigError(
            f"The two models were not scored on the same images ({len(only)} differ, e.g. "
            f"{only[0] if only else '?'}): each leaves out the images it was trained on; "
            "compare them on data neither was trained on.")
    table = contingency(np.array(ia["correct"]), np.array(ib["correct"]))
    test = mcnemar(table, method)
    return {"table": table, **test, "n_images": len(ia["names"]),
            "accuracy_a": a["accuracy"], "accuracy_b": b["accuracy"],
            **accuracy_difference(table), "model_a": model_a.name, "model_b": model_b.name,
            "data": printable(data)}
