"""Classifier heads on cached features, and their calibration. NumPy to fit and predict: the
default training mode needs no PyTorch.

- :class:`LogisticHead`: multinomial logistic regression (scikit-learn) on L2-normalised
  features, class-balanced.
- :class:`MLPHead`: the study's head, Dense(128, ReLU) -> Dropout(0.2) -> softmax, trained
  with Adam on a class-weighted cross-entropy, early stopping on the validation loss with the
  best weights restored.
- :class:`TemperatureScaler`: one temperature fitted on validation logits (Guo et al. 2017),
  so that probabilities mean what they say.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from imgatlas._adam import Adam
from imgatlas._validation import check_is_fitted


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _class_weights(y: np.ndarray, classes: np.ndarray, mode: str | dict | None
                   ) -> np.ndarray:
    """Per-class loss weights: 1, ``balanced`` (n / (k * count)), or a dict {class: w}."""
    n_classes = len(classes)
    if isinstance(mode, dict):
        return np.array([float(mode.get(c, 1.0)) for c in classes])
    if mode != "balanced":
        return np.ones(n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)


def _decision_function(self: Any, X: Any) -> np.ndarray:
    """scikit-learn's shape: (n,) for two classes (positive = the second), else (n, k)."""
    z = self.logits(X)
    return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z


class LogitsClassifier(ClassifierMixin, BaseEstimator):
    """A head that gives class logits: probabilities and the predicted class follow."""

    def logits(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self.logits(X))

    def predict(self, X: Any) -> np.ndarray:
        best = self.logits(X).argmax(1)
        return self.classes_[best]


class LogisticHead(LogitsClassifier):
    """Multinomial logistic regression on L2-normalised features (C = 3 by default: on the
    dev clothing and rooms features C from 0.3 to 30 moved accuracy by +-0.02)."""

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, C: float = 3.0, max_iter: int = 3000,
                 class_weight: str | None = "balanced") -> None:
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any) -> LogisticHead:
        from sklearn.linear_model import LogisticRegression

        self._validate_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter,
                                class_weight=self.class_weight).fit(normalize(X), y)
        self.classes_ = lr.classes_
        self.n_iter_ = lr.n_iter_
        self.coef_ = lr.coef_.astype(np.float32)
        self.intercept_ = lr.intercept_.astype(np.float32)
        if len(self.classes_) == 2:  # scikit-learn keeps one row for two classes
            self.coef_ = np.vstack([-self.coef_, self.coef_]) / 2
            self.intercept_ = np.array([-self.intercept_[0], self.intercept_[0]]) / 2
        return self

    def logits(self, X: Any) -> np.ndarray:
        """(n, classes) scores whose softmax is the probability, for any number of classes."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return normalize(X).astype(np.float32) @ self.coef_.T + self.intercept_

    decision_function = _decision_function

    def arrays(self) -> dict[str, np.ndarray]:
        """What predicting needs, for a model folder."""
        return {"coef": self.coef_, "intercept": self.intercept_}


class MLPHead(LogitsClassifier):
    """Dense(``hidden``, ReLU) -> Dropout(``dropout``) -> softmax on standardised,
    L2-normalised features; Adam; early stopping on the validation loss (``patience``
    epochs) with the best weights restored; class-balanced cross-entropy.

    ``fit(X, y, X_val=..., y_val=...)`` takes the validation set; without one it holds out
    ``validation_fraction`` (stratified, seeded). ``history_`` holds one dict per epoch.
    """

    _parameter_constraints: dict = {
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, hidden: int = 128, dropout: float = 0.2, learning_rate: float = 1e-3,
                 batch_size: int = 64, max_epochs: int = 300, patience: int = 20,
                 weight_decay: float = 1e-4, class_weight: str | None = "balanced",
                 validation_fraction: float = 0.2, random_state: int | None = 0) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> MLPHead:
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        rng = np.random.default_rng(self.random_state)
        if X_val is None:
            from sklearn.model_selection import train_test_split

            # stratified only when both parts can hold every class (few images a class:
            # a plain random split, as scikit-learn cannot stratify it)
            n_val = int(np.ceil(self.validation_fraction * len(yi)))
            k = len(self.classes_)
            strat = (yi if np.bincount(yi).min() >= 2 and k <= n_val <= len(yi) - k
                     else None)
            tr, va = train_test_split(np.arange(len(yi)), test_size=self.validation_fraction,
                                      stratify=strat, random_state=self.random_state)
            X, X_val, yi, yv = X[tr], X[va], yi[tr], yi[va]
        else:
            X_val = np.asarray(X_val)
            index = {c: k for k, c in enumerate(self.classes_)}
            yv = np.array([index[c] for c in np.asarray(y_val)])
        Xn = normalize(X)
        self.mean_ = Xn.mean(0).astype(np.float32)
        self.scale_ = (Xn.std(0) + 1e-6).astype(np.float32)
        A, Av = self._standardise(X), self._standardise(X_val)
        d, k = A.shape[1], len(self.classes_)
        w = _class_weights(yi, self.classes_, self.class_weight)
        params = [rng.normal(0, np.sqrt(2.0 / d), (d, self.hidden)).astype(np.float32),
                  np.zeros(self.hidden, np.float32),
                  rng.normal(0, np.sqrt(1.0 / self.hidden), (self.hidden, k)).astype(np.float32),
                  np.zeros(k, np.float32)]
        adam = Adam(params, self.learning_rate)
        best, best_params, bad, best_epoch = np.inf, [p.copy() for p in params], 0, 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(1, self.max_epochs + 1):
            order = rng.permutation(len(A))
            total = correct = 0.0
            for s in range(0, len(order), self.batch_size):
                b = order[s:s + self.batch_size]
                loss, grads, hits = self._step(A[b], yi[b], w, params, rng)
                if self.weight_decay:
                    grads[0] = grads[0] + self.weight_decay * params[0]
                    grads[2] = grads[2] + self.weight_decay * params[2]
                adam.step(grads)
                total += loss * len(b)
                correct += hits
            logits = self._forward(Av, params)
            p = softmax(logits)
            val_loss = float(-(w[yv] * np.log(p[np.arange(len(yv)), yv] + 1e-12)).sum()
                             / w[yv].sum())
            row = {"epoch": epoch, "train_loss": total / len(A), "train_acc": correct / len(A),
                   "val_loss": val_loss, "val_acc": float((p.argmax(1) == yv).mean())}
            self.history_.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if val_loss < best - 1e-5:
                best, best_params, bad = val_loss, [q.copy() for q in params], 0
                best_epoch = epoch
            else:
                bad += 1
                if bad >= self.patience:
                    break
        self.W1_, self.b1_, self.W2_, self.b2_ = best_params
        self.best_epoch_ = best_epoch
        self.n_iter_ = len(self.history_)
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((normalize(X) - self.mean_) / self.scale_).astype(np.float32)

    @staticmethod
    def _forward(A: np.ndarray, params: list[np.ndarray]) -> np.ndarray:
        W1, b1, W2, b2 = params
        return np.maximum(A @ W1 + b1, 0) @ W2 + b2

    def _step(self, A: np.ndarray, y: np.ndarray, w: np.ndarray, params: list[np.ndarray],
              rng: np.random.Generator) -> tuple[float, list[np.ndarray], int]:
        W1, b1, W2, b2 = params
        z = A @ W1 + b1
        h = np.maximum(z, 0)
        keep = 1.0 - self.dropout
        mask = (rng.random(h.shape) < keep).astype(np.float32) / keep if self.dropout else 1.0
        hd = h * mask
        logits = hd @ W2 + b2
        p = softmax(logits)
        wy = w[y]
        norm = wy.sum()
        loss = float(-(wy * np.log(p[np.arange(len(y)), y] + 1e-12)).sum() / norm)
        g = p.copy()
        g[np.arange(len(y)), y] -= 1
        g *= (wy / norm)[:, None]
        gW2, gb2 = hd.T @ g, g.sum(0)
        gh = (g @ W2.T) * mask * (z > 0)
        gW1, gb1 = A.T @ gh, gh.sum(0)
        return loss, [gW1, gb1, gW2, gb2], int((p.argmax(1) == y).sum())

    def logits(self, X: Any) -> np.ndarray:
        """(n, classes) scores whose softmax is the probability."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._forward(self._standardise(X), [self.W1_, self.b1_, self.W2_, self.b2_])

    decision_function = _decision_function

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "W1": self.W1_, "b1": self.b1_,
                "W2": self.W2_, "b2": self.b2_}


class TemperatureScaler(BaseEstimator):
    """``softmax(logits / T)`` with T fitted on held-out logits by minimising the negative
    log-likelihood (one parameter: it never changes which class wins)."""

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        from scipy.optimize import minimize_scalar

        logits = np.asarray(logits, np.float64)
        y = np.asarray(y)

        def nll(log_t: float) -> float:
            p = softmax(logits / np.exp(log_t))
            return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

        res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
        self.temperature_ = float(np.exp(res.x))
        return self

    def transform(self, logits: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return softmax(np.asarray(logits, np.float64) / self.temperature_)


def head_logits(kind: str, arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Logits of a saved head (``model.npz``) for raw features ``X``, in NumPy."""
    Xn = normalize(np.asarray(X, np.float32))
    if kind == "logistic":
        return Xn @ arrays["coef"].T + arrays["intercept"]
    if kind == "mlp":
        A = (Xn - arrays["mean"]) / arrays["scale"]
        return np.maximum(A @ arrays["W1"] + arrays["b1"], 0) @ arrays["W2"] + arrays["b2"]
    raise ValueError(f"unknown head kind {kind!r}")
