"""The train stage: labels + features (or pixels) -> a model folder, recorded as a run.

Modes: ``head`` (default; NumPy, on the cached features: logistic regression and the
study's MLP head, the better on validation kept), ``finetune`` (the head, then the backbone's
last blocks fine-tuned with augmentation; PyTorch) and ``cnn-small`` (the study's small CNN
from scratch, the baseline; PyTorch). Every mode calibrates its probabilities by temperature
scaling on the validation images and reports the expected calibration error before and
after, on the test images.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas import defaults
from imgatlas._progress import progress_bar
from imgatlas._version import __version__
from imgatlas.classify._features import read_features
from imgatlas.classify._heads import LogisticHead, MLPHead, TemperatureScaler, softmax
from imgatlas.classify._labels import Labels, resolve_labels
from imgatlas.classify._model import write_model_folder
from imgatlas.classify._select import select_head
from imgatlas.classify._split import Split, holdout_split, kfold_splits
from imgatlas.errors import ConfigError
from imgatlas.evaluate.classification import (
    classification_scores,
    expected_calibration_error,
)
from imgatlas.store import Workspace, fingerprint

MODES = defaults.TRAIN_MODES
MIN_PROBABILITY = 0.5  # abstain below this calibrated top probability (tunable at predict)
SIMILARITY_QUANTILE = 0.01  # abstain when less like the training images than 99 % of val
SUSPECTS = 50  # suspected label errors kept in the model


def models_dir(ws: Workspace) -> Path:
    return ws.path / "models"


def train_workspace(ws: Workspace, *, labels: str = "folders", mode: str = "head",
                    name: str | None = None, folds: int | None = None,
                    features: str | None = None, seed: int = defaults.SEED,
                    epochs: int | None = None, progress: bool = False,
                    cache_dir: Path | None = None, tune_blocks: int | None = None,
                    views: int | None = None, exclude: list[str] | None = None
                    ) -> dict[str, Any]:
    """Train a classifier on the workspace's labelled images; save it under
    ``W/models/NAME/``; record the run. See the module docstring for the modes.
    ``exclude``: leave out what the latest inspection puts under these names
    (``duplicates``, ``blurry`` ...)."""
    _check_options(mode, name, folds, features)
    data = _training_set(ws, labels, features, exclude)
    ids, classes, lab = data.ids, data.classes, data.lab
    keys = ",".join(s.key for s in data.stores)
    params = {"labels": lab.source, "mode": mode, "name": name, "folds": folds,
              "features": keys, "epochs": epochs, "n_labelled": int(len(ids)),
              "tune_blocks": tune_blocks, "views": views}
    if exclude:
        params["exclude"] = list(exclude)
    with ws.recording("train", params, seed=seed, inputs=fingerprint(ids, keys)) as run:
        t0 = time.perf_counter()
        name = name or f"{mode}-r{run.id}"
        meta: dict[str, Any] = {
            "name": name, "kind": "head", "mode": mode, "classes": classes,
            "version": __version__, "labels": lab.source, "label_notes": lab.notes,
            "backbone": _backbone_record(data.stores[0]), "store": keys, "seed": seed,
            "backbones": [_backbone_record(s) for s in data.stores], "run_id": run.id,
        }
        if mode == "head":
            fit = _fit_head(ws, data, folds, seed, progress, meta)
        else:
            fit = _fit_on_split(ws, data, folds, seed, progress, meta)
        workdir = models_dir(ws) / f".work-{name}"
        if mode == "finetune":
            _finetune_step(ws, data, fit, meta, seed=seed, epochs=epochs, progress=progress,
                           cache_dir=cache_dir, workdir=workdir, tune_blocks=tune_blocks,
                           views=views)
        elif mode == "cnn-small":
            _cnn_small_step(ws, data, fit, meta, seed=seed, epochs=epochs, progress=progress,
                            workdir=workdir)
        evidence = _checks_and_evidence(ws, data, fit, meta, seed)
        meta["seconds"] = round(time.perf_counter() - t0, 2)
        try:
            folder = write_model_folder(models_dir(ws) / name, meta,
                                        head=fit.arrays if fit.onnx is None else None,
                                        onnx=fit.onnx, evidence=evidence, epochs=fit.epochs_log)
        finally:
            if fit.onnx is not None:
                fit.onnx.unlink(missing_ok=True)
        run.results = {"model": str(folder), "name": name, "mode": mode,
                       "kind": meta["kind"],
                       "classes": classes, "n_images": int(len(ids)),
                       "metrics": meta["metrics"], "heads": meta["heads"],
                       "selection": meta.get("selection"),
                       "temperature": meta["temperature"], "notes": lab.notes,
                       "seconds": meta["seconds"], "run_id": run.id}
    return run.results


@dataclass
class _TrainingSet:
    stores: list[Any]
    lab: Any  # the resolved labels, restricted to the images with features
    ids: np.ndarray  # id order, as the stores return features
    y: np.ndarray
    X: np.ndarray
    classes: list[str]


@dataclass
class _Fit:
    """What a mode's fitting leaves for the model folder and the checks after it."""

    arrays: dict[str, np.ndarray] | None
    epochs_log: Any
    test_probs: np.ndarray | None
    test_rows: np.ndarray  # rows whose predictions score the model (out-of-fold for heads)
    taught: np.ndarray  # rows the final model learnt from (the evidence shown with answers)
    abstain_cut: float | None = None
    split: Split | None = None  # the split fine-tuning and the small CNN train on
    heads: dict[str, Any] | None = None
    onnx: Path | None = None


def _check_options(mode: str, name: str | None, folds: int | None, features: str | None
                   ) -> None:
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}. Got {mode!r} instead.")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ConfigError(f"--name must be letters, digits, '.', '_' or '-' (at most 64). "
                          f"Got {name!r} instead.")
    if folds is not None and folds < 2:
        raise ConfigError(f"--folds must be at least 2. Got {folds} instead.")
    if mode != "head" and features and len(features.split(",")) > 1:
        raise ConfigError(f"--mode {mode} trains on one backbone; give one --features.")


def _training_set(ws: Workspace, labels: str, features: str | None,
                  exclude: list[str] | None) -> _TrainingSet:
    stores = [ws.pick_store(f.strip()) for f in features.split(",")] if features else \
        [ws.pick_store()]
    lab = resolve_labels(ws, labels)
    have, X = read_features(stores, np.asarray(lab.ids))
    if exclude:
        from imgatlas.inspect import excluded_ids

        keep = ~np.isin(have, list(excluded_ids(ws, exclude)))
        have, X = have[keep], X[keep]
    lab = _restrict(lab, have)
    order = np.argsort(np.asarray(lab.ids))  # id order, as the store returned X
    y = np.asarray(lab.labels)[order]
    return _TrainingSet(stores, lab, np.asarray(lab.ids)[order], y, X,
                        sorted(set(y.tolist())))


def _fit_head(ws: Workspace, data: _TrainingSet, folds: int | None, seed: int,
              progress: bool, meta: dict[str, Any]) -> _Fit:
    """The head chosen and scored by cross-validation, then refitted on every label."""
    sel = select_head(data.X, data.y, data.classes, folds, seed, progress)
    every = np.arange(len(data.ids))
    meta.update({
        "head": "mlp" if sel["chosen"] == "mlp" else "logistic", "selection": sel["chosen"],
        "temperature": sel["temperature"], "metrics": sel["metrics"] or {},
        "heads": sel["summary"], "protocol": _cv_protocol(sel, len(data.ids)),
        "split": {"folds": [{"taught_sha256": _taught_sha(ws, data.ids)}],
                  "n_folds": sel["folds"]}})
    if sel["metrics"] is None:
        data.lab.notes.append("too few labels to estimate the accuracy (at least 2 of "
                              "every class are needed): the head is fitted on all of them")
    return _Fit(sel["final"].arrays(), sel["history"], sel["oof_probs"], every, every,
                abstain_cut=sel["similarity_cut"])


def _fit_on_split(ws: Workspace, data: _TrainingSet, folds: int | None, seed: int,
                  progress: bool, meta: dict[str, Any]) -> _Fit:
    """The linear probe that fine-tuning and the small CNN start from (and are judged
    against), on a held-out split or k folds."""
    y = data.y
    splits = kfold_splits(y.tolist(), folds, seed=seed) if folds else \
        [holdout_split(y.tolist(), seed=seed)]
    heads = _head_mode(data.X, y, data.classes, splits, seed, progress)
    meta.update({
        "head": heads["chosen"],
        "protocol": (f"stratified {folds}-fold, 20 % of each training part for validation"
                     if folds else
                     "stratified 70 % train / 30 % test, 20 % of train for validation"),
        "split": _split_record(ws, data.ids, splits[-1]) if not folds else
        {"folds": [_split_record(ws, data.ids, s) for s in splits]},
        "temperature": heads["temperature"], "metrics": heads["metrics"],
        "heads": heads["summary"]})
    last = splits[-1]
    return _Fit(heads["final"].arrays(), heads["history"], heads["test_probs"], last.test,
                np.concatenate([last.train, last.val]), split=last, heads=heads)


def _finetune_step(ws: Workspace, data: _TrainingSet, fit: _Fit, meta: dict[str, Any], *,
                   seed: int, epochs: int | None, progress: bool, cache_dir: Path | None,
                   workdir: Path, tune_blocks: int | None, views: int | None) -> None:
    """Fine-tune the last blocks; kept only where it beats the head on validation."""
    from imgatlas.classify._finetune import finetune

    chosen = meta["head"]
    ft = finetune(ws, data.ids, data.y, data.classes, fit.split, data.stores[0],
                  fit.heads["logistic"], seed=seed, epochs=epochs, progress=progress,
                  cache_dir=cache_dir, workdir=workdir,
                  **{k: v for k, v in (("tune_blocks", tune_blocks), ("views", views))
                     if v is not None})
    meta["heads"]["finetune"] = {k: ft["scores"][k] for k in (
        "accuracy", "balanced_accuracy", "ece", "ece_uncalibrated", "val_accuracy")}
    head_val = meta["heads"][chosen]["val_accuracy"]
    if keep_finetune(ft["scores"]["val_accuracy"], head_val):
        meta.update(ft["meta"])
        fit.test_probs, fit.onnx, fit.epochs_log = ft["test_probs"], ft["onnx"], ft["history"]
    else:  # fine-tuning did not beat the linear probe where it can be judged
        ft["onnx"].unlink(missing_ok=True)
        data.lab.notes.append(
            f"fine-tuning reached validation accuracy {ft['scores']['val_accuracy']:.3f}"
            f", not above the {chosen} head's {head_val:.3f}: the head is kept")
        meta["finetune_not_kept"] = ft["meta"]["finetune"]


def _cnn_small_step(ws: Workspace, data: _TrainingSet, fit: _Fit, meta: dict[str, Any], *,
                    seed: int, epochs: int | None, progress: bool, workdir: Path) -> None:
    from imgatlas.classify._cnn_small import train_cnn_small

    cnn = train_cnn_small(ws, data.ids, data.y, data.classes, fit.split, seed=seed,
                          epochs=epochs, progress=progress, workdir=workdir)
    meta.update(cnn["meta"])
    meta["heads"]["cnn-small"] = {k: cnn["scores"][k] for k in (
        "accuracy", "balanced_accuracy", "ece", "ece_uncalibrated", "val_accuracy")}
    fit.test_probs, fit.onnx, fit.epochs_log = cnn["test_probs"], cnn["onnx"], cnn["history"]


def _checks_and_evidence(ws: Workspace, data: _TrainingSet, fit: _Fit, meta: dict[str, Any],
                         seed: int) -> dict[str, np.ndarray]:
    """The abstain rule, suspected label errors and confident mistakes into ``meta``; the
    evidence (taught images' features) the model shows beside its answers."""
    ids, y, X = data.ids, data.y, data.X
    evidence_X = meta.pop("_evidence_features", X)
    meta["abstain"] = (_abstain_rule(evidence_X, fit.split) if fit.abstain_cut is None
                       else _abstain_cut(fit.abstain_cut))
    meta["suspected_label_errors"] = _suspects(ws, X, y, ids, data.classes, seed)
    meta["confident_mistakes"] = (
        _mistakes(ws, ids[fit.test_rows], y[fit.test_rows], fit.test_probs, data.classes)
        if fit.test_probs is not None else [])
    paths = ws.display_and_label()
    taught = fit.taught
    return {"features": normalize(evidence_X[taught]).astype(np.float16),
            "ids": ids[taught], "labels": y[taught].astype(str),
            "paths": np.array([paths[int(i)][0] for i in ids[taught]], dtype=str)}


def keep_finetune(finetune_val: float, head_val: float) -> bool:
    """Fine-tuning is kept only when it beats the head on validation (a tie keeps the head:
    fewer assumptions). On the dev rooms set it tied on validation for every seed and lost
    on test, on clothing it won both (benchmarks/RESULTS.md)."""
    return finetune_val > head_val


def _restrict(lab: Labels, have: np.ndarray) -> Labels:
    keep = set(have.tolist())
    # one label per image (a CSV may name an image twice: the last line wins)
    last = dict(zip(lab.ids, lab.labels, strict=True))
    pairs = [(i, label) for i, label in last.items() if i in keep]
    missing = len(lab.ids) - len(pairs)
    notes = list(lab.notes)
    if missing:
        notes.append(f"left out {missing} labelled image(s) without features (not usable "
                     "or not embedded yet)")
    if not pairs:
        raise ConfigError("None of the labelled images has features; run 'imgatlas embed'.")
    return Labels([i for i, _ in pairs], [lab_ for _, lab_ in pairs], lab.source, notes)


def _backbone_record(store: Any) -> dict[str, Any]:
    from imgatlas.backbones import create_backbone, portable_calibration
    from imgatlas.errors import UnknownBackbone

    rec = store.cfg["backbone"]
    precision = rec.get("precision", "fp32")
    if precision != "fp32" and not portable_calibration(rec.get("calibration")):
        # calibrated on that workspace's own images: no other collection gets its features
        raise ConfigError(f"Store {store.key} holds {precision} features calibrated on this "
                          "collection; embed again (the int8 graph is now calibrated on "
                          "images shipped with imgatlas) or choose an fp32 store with "
                          "--features.")
    identity = (rec.get("extra") or {}).get("identity")  # recorded (a Hugging Face export)
    try:
        identity = identity or create_backbone(rec["name"]).identity()
    except (UnknownBackbone, Exception):  # noqa: BLE001 - a user's ONNX file: by its path
        identity = None
    out = {"name": rec["name"], "weights": rec.get("weights"), "identity": identity,
           "input_size": rec.get("input_size"), "dim": store.dim}
    if precision != "fp32":
        out.update(precision=precision, calibration=rec["calibration"])
    return out


def _split_record(ws: Workspace, ids: np.ndarray, split: Split) -> dict[str, Any]:
    sha = {r.id: r.sha256 for r in ws.images()}
    part = {k: ids[getattr(split, k)].tolist() for k in ("train", "val", "test")}
    # content hashes of what the model learned from: evaluate-model leaves these out
    part["taught_sha256"] = sorted({sha[i] for k in ("train", "val") for i in part[k]
                                    if sha.get(i)})
    return part


def _fit_heads(X: np.ndarray, y: np.ndarray, classes: list[str], split: Split, seed: int,
               bar: Any) -> dict[str, Any]:
    Xt, yt, Xv, yv = X[split.train], y[split.train], X[split.val], y[split.val]
    lr = LogisticHead().fit(Xt, yt)

    def on_epoch(row: dict[str, float]) -> None:
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_acc']:.3f}")

    mlp = MLPHead(random_state=seed).fit(Xt, yt, X_val=Xv, y_val=yv, on_epoch=on_epoch)
    out = {}
    cls_index = {c: k for k, c in enumerate(classes)}
    for key, h in (("logistic", lr), ("mlp", mlp)):
        # a fold may miss a class: map the head's own classes into the model's order
        def logits(A: np.ndarray, h: Any = h) -> np.ndarray:
            z = np.full((len(A), len(classes)), -1e4, np.float32)
            z[:, [cls_index[c] for c in h.classes_]] = h.logits(A)
            return z

        yv_i = np.array([cls_index[c] for c in yv])
        ts = TemperatureScaler().fit(logits(Xv), yv_i)
        val_acc = float((logits(Xv).argmax(1) == yv_i).mean())
        out[key] = {"head": h, "logits": logits, "temperature": ts.temperature_,
                    "val_accuracy": val_acc}
    return out


def _head_mode(X: np.ndarray, y: np.ndarray, classes: list[str], splits: list[Split],
               seed: int, progress: bool) -> dict[str, Any]:
    """Both heads on every split; test metrics for both. The logistic head (fewer
    parameters) is the model unless the MLP's validation accuracy beats it by more than one
    standard error of a validation accuracy, sqrt(p (1 - p) / n_val): on a few hundred
    validation images smaller differences are noise."""
    cls_index = {c: k for k, c in enumerate(classes)}
    per_head: dict[str, list[dict[str, Any]]] = {"logistic": [], "mlp": []}
    bar = progress_bar(total=len(splits), desc="train heads", unit="split", enable=progress)
    fitted = None
    for split in splits:
        fitted = _fit_heads(X, y, classes, split, seed, bar)
        yt_i = np.array([cls_index[c] for c in y[split.test]])
        for key, f in fitted.items():
            z = f["logits"](X[split.test])
            raw, cal = softmax(z), softmax(z / f["temperature"])
            scores = classification_scores(yt_i, z.argmax(1), classes, cal)
            scores["ece_uncalibrated"] = expected_calibration_error(raw, yt_i)
            scores["val_accuracy"] = f["val_accuracy"]
            per_head[key].append(scores)
        bar.update(1)
    bar.close()
    summary = {k: _mean_scores(v) for k, v in per_head.items()}
    p = summary["logistic"]["val_accuracy"]
    n_val = sum(len(s.val) for s in splits)
    margin = float(np.sqrt(max(p * (1 - p), 1e-12) / max(n_val, 1)))
    chosen = "mlp" if summary["mlp"]["val_accuracy"] > p + margin else "logistic"
    final = fitted[chosen]
    z = final["logits"](X[splits[-1].test])
    test_probs = softmax(z / final["temperature"])
    history = [{"epoch": h["epoch"], **{k: round(v, 5) for k, v in h.items() if k != "epoch"}}
               for h in fitted["mlp"]["head"].history_]
    return {"chosen": chosen, "final": final["head"], "temperature": final["temperature"],
            "logistic": fitted["logistic"]["head"],
            "metrics": {**per_head[chosen][-1], **({"folds": summary[chosen]}
                                                   if len(splits) > 1 else {})},
            "summary": summary, "history": history, "test_probs": test_probs}


def _mean_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("accuracy", "balanced_accuracy", "ece", "ece_uncalibrated", "val_accuracy")
    out: dict[str, Any] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if len(rows) > 1:
        out.update({f"{k}_sd": float(np.std([r[k] for r in rows])) for k in keys})
        out["n_folds"] = len(rows)
    out["n_test_images"] = int(sum(r["n_images"] for r in rows))
    return out


def _abstain_rule(X: np.ndarray, split: Split) -> dict[str, Any]:
    """The similarity cut: the 1st percentile of the validation images' similarity to their
    nearest training image; the probability cut: ``MIN_PROBABILITY``."""
    T = normalize(X[split.train])
    V = normalize(X[split.val])
    nearest = (V @ T.T).max(1) if len(V) else np.array([0.0])
    return _abstain_cut(float(np.quantile(nearest, SIMILARITY_QUANTILE)), "validation")


def _abstain_cut(cut: float | None, held_out: str = "held-out fold") -> dict[str, Any]:
    cut = 0.0 if cut is None else cut
    return {"min_probability": MIN_PROBABILITY, "min_similarity": round(cut, 4),
            "rule": f"unknown when the calibrated top probability is under "
                    f"{MIN_PROBABILITY} or the cosine similarity to the nearest training "
                    f"image is under {cut:.3f} (the 1st percentile of the {held_out} "
                    "images')"}


def _cv_protocol(sel: dict[str, Any], n: int) -> str:
    if not sel["folds"]:
        return f"fitted on all {n} labelled images (too few to cross-validate)"
    return (f"stratified {sel['folds']}-fold cross-validation chose {sel['chosen']} and the "
            f"temperature; then refitted on all {n} labelled images (accuracy estimated "
            "out of fold)")


def _taught_sha(ws: Workspace, ids: np.ndarray) -> list[str]:
    sha = {r.id: r.sha256 for r in ws.images()}
    return sorted({sha[int(i)] for i in ids if sha.get(int(i))})


def _mistakes(ws: Workspace, ids: np.ndarray, y: np.ndarray, P: np.ndarray,
              classes: list[str]) -> list[dict[str, Any]]:
    """The test images the model got wrong, most confident first."""
    pred = P.argmax(1)
    wrong = np.flatnonzero(np.array([classes[p] for p in pred]) != y)
    wrong = wrong[np.argsort(-P[wrong, pred[wrong]], kind="stable")][:SUSPECTS]
    paths = ws.display_and_label()
    return [{"id": int(ids[r]), "path": paths[int(ids[r])][0], "label": str(y[r]),
             "predicted": classes[pred[r]], "probability": round(float(P[r, pred[r]]), 4)}
            for r in wrong]


def _suspects(ws: Workspace, X: np.ndarray, y: np.ndarray, ids: np.ndarray,
              classes: list[str], seed: int) -> list[dict[str, Any]]:
    """Images whose out-of-fold prediction confidently disagrees with their label, in the
    spirit of cleanlab's confident learning: class j's threshold is the mean out-of-fold
    probability of j over the images labelled j; an image labelled i is suspect when some
    other class j reaches its threshold and i does not reach its own."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.unique(y, return_counts=True)[1]
    k = int(min(5, counts.min()))
    if k < 2:
        return []
    yi = np.array([classes.index(c) for c in y])
    P = np.zeros((len(y), len(classes)))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, yi):
        h = LogisticHead().fit(X[tr], yi[tr])
        P[np.ix_(te, h.classes_)] = h.predict_proba(X[te])
    thresh = np.array([P[yi == j, j].mean() if (yi == j).any() else 1.0
                       for j in range(len(classes))])
    other = P.copy()
    other[np.arange(len(y)), yi] = -1
    j = other.argmax(1)
    suspect = (P[np.arange(len(y)), j] >= thresh[j]) & (P[np.arange(len(y)), yi] < thresh[yi])
    rows = np.flatnonzero(suspect)
    rows = rows[np.argsort(-(P[rows, j[rows]] - P[rows, yi[rows]]), kind="stable")][:SUSPECTS]
    paths = ws.display_and_label()
    return [{"id": int(ids[r]), "path": paths[int(ids[r])][0], "label": str(y[r]),
             "predicted": classes[j[r]], "probability": round(float(P[r, j[r]]), 4),
             "label_probability": round(float(P[r, yi[r]]), 4)} for r in rows]
