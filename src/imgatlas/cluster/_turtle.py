"""A margin-seeking clustering head in the spirit of TURTLE (Gadetsky, Jiang & Brbic, "Let Go
of Your Labels with Unsupervised Transfer", ICML 2024).

TURTLE looks for the labelling of a collection that a linear classifier, trained on it,
would reproduce best: a linear *task encoder* proposes soft labels, an inner linear learner
is trained on them for a few steps (warm-started across iterations), and the task encoder
is moved so that the learner's predictions agree with its labels, against an entropy term
that keeps the labels from collapsing into one cluster. Labellings that put the cluster
boundaries through empty regions (large margins) win.

The entropy term assumes clusters of equal size, and on class-imbalanced collections that
prior hurts (SCAN's head lost to k-means there for the same reason). Here the term is
``gamma * KL(mean label || prior)``: ``prior="uniform"`` is TURTLE's (the KL to the uniform
distribution is the negative entropy up to a constant); ``prior="kmeans"`` (the default)
takes the cluster proportions of the k-means solution, and the task encoder starts from
that solution, so
the head moves boundaries towards larger margins without forcing groups to equal size.

PyTorch to fit (the ``train`` extra; seconds to a minute on a CPU), NumPy to predict.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from imgatlas._validation import check_is_fitted


class TURTLEClusterer(ClusterMixin, BaseEstimator):
    """Margin-seeking clustering on (reduced) features; see the module docstring.

    The task encoder is a weight-normalised linear layer on the L2-normalised input; the inner
    learner a linear layer trained with Adam (``inner_lr``) for ``inner_steps`` steps per
    iteration, warm-started; ``n_iter`` outer Adam steps (``learning_rate``) on batches of
    at most ``batch_size`` images (TURTLE's defaults, but 1,500 iterations rather than
    6,000: on the dev sets the labelling had settled by then).

    Attributes: ``theta_`` (d, k), ``bias_`` (k,), ``labels_``, ``prior_`` (the target
    cluster proportions), ``history_`` (the two losses every 100 steps).
    """

    _INIT_SCALE = 10.0  # cosine gaps of ~0.1 between centres give clear but soft labels

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions({"kmeans", "uniform"})],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "inner_steps": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "inner_lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, gamma: float = 10.0, prior: str = "kmeans",
                 n_iter: int = 1500, inner_steps: int = 10, learning_rate: float = 1e-3,
                 inner_lr: float = 1e-3, batch_size: int = 10_000,
                 random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.prior = prior
        self.n_iter = n_iter
        self.inner_steps = inner_steps
        self.learning_rate = learning_rate
        self.inner_lr = inner_lr
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> TURTLEClusterer:
        from imgatlas._optional import import_torch
        from imgatlas.cluster._methods import KMeansClusterer, _check_k, check_min_samples

        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        check_min_samples(X, 2, "TURTLE")
        _check_k(self.n_clusters, X)
        torch = import_torch("the TURTLE clustering head")
        seed = 0 if self.random_state is None else int(self.random_state)
        Xn = np.ascontiguousarray(normalize(X), dtype=np.float32)
        n, d = Xn.shape
        k = self.n_clusters
        torch.manual_seed(seed)
        gen = np.random.default_rng(seed)
        nn, F = torch.nn, torch.nn.functional
        linear = nn.Linear(d, k)
        if self.prior == "kmeans":
            km = KMeansClusterer(k, random_state=seed).fit(Xn)
            counts = np.bincount(km.labels_, minlength=k).astype(np.float64)
            self.prior_ = counts / counts.sum()
            # start from the k-means labelling (nearest centre on the sphere, softened), so
            # the head refines a sane partition instead of searching from noise
            centres = normalize(km.cluster_centers_).astype(np.float32)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(centres * self._INIT_SCALE))
                linear.bias.zero_()
        else:
            self.prior_ = np.full(k, 1.0 / k)
        # weight norm on the task encoder: the paper's "crucial for good performance"
        encoder = nn.utils.parametrizations.weight_norm(linear)
        opt = torch.optim.Adam(encoder.parameters(), lr=self.learning_rate)
        inner = nn.Linear(d, k)  # the inner learner, warm-started across iterations
        inner_opt = torch.optim.Adam(inner.parameters(), lr=self.inner_lr)
        prior = torch.from_numpy(np.maximum(self.prior_, 1e-8)).float()
        T = torch.from_numpy(Xn)
        batch = min(self.batch_size, n)
        self.history_: list[dict[str, float]] = []
        for it in range(self.n_iter):
            x = T[torch.from_numpy(gen.choice(n, batch, replace=False))] if batch < n else T
            labels = F.softmax(encoder(x), dim=1)
            for _ in range(self.inner_steps):
                inner_opt.zero_grad()
                F.cross_entropy(inner(x), labels.detach()).backward()
                inner_opt.step()
            fit_loss = F.cross_entropy(inner(x).detach(), labels)
            mean = labels.mean(0).clamp_min(1e-8)
            balance = (mean * (mean.log() - prior.log())).sum()  # KL(mean || prior)
            opt.zero_grad()
            (fit_loss + self.gamma * balance).backward()
            opt.step()
            if it % 100 == 0 or it == self.n_iter - 1:
                self.history_.append({"iter": it, "fit": float(fit_loss.detach()),
                                      "balance": float(balance.detach())})
        with torch.no_grad():
            self.theta_ = encoder.weight.detach().numpy().T.astype(np.float32).copy()
            self.bias_ = encoder.bias.detach().numpy().astype(np.float32).copy()
        self.scale_ = 1.0
        self.labels_ = self._assign(Xn)
        return self

    def _logits(self, Xn: np.ndarray) -> np.ndarray:
        return self.scale_ * (Xn @ self.theta_) + self.bias_

    def _assign(self, Xn: np.ndarray) -> np.ndarray:
        return self._logits(Xn).argmax(1).astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self._assign(np.asarray(normalize(X), np.float32))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        z = self._logits(np.asarray(normalize(X), np.float32))
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)
