"""SCAN's clustering step on frozen features: a cluster head trained on kNN-neighbour pairs.

Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels" (ECCV 2020), train a
head so that an image and its nearest neighbours get the same cluster, against the entropy
of the mean assignment. Here the head is trained on features that are already computed (no
backbone training, no augmentation), which takes seconds on a CPU.

The entropy term assumes clusters of roughly equal size. On the balanced dev sets that is
worth +0.08 ACC on rooms over k-means and about nothing elsewhere; on class-imbalanced
subsets it loses to k-means (benchmarks/bench_cluster_heads.py). Hence an option, not the
default.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

from imgatlas._validation import check_is_fitted


class SCANClusterer(ClusterMixin, BaseEstimator):
    """Cosine-softmax cluster heads trained with the SCAN loss; the lowest-loss head wins.

    Each of ``n_heads`` heads holds ``n_clusters`` prototype directions; an image's cluster
    probabilities are ``softmax(cos(x, prototype) / temperature)``. Training pulls each image
    and a random one of its ``n_neighbors`` nearest neighbours (cosine) towards the same
    cluster: loss ``-log <p(x), p(x')> + entropy_weight * sum(p_mean * log p_mean)``. As in
    SCAN, several heads start from different random prototypes and the one with the lowest
    loss over all neighbour pairs is kept. Above ``max_train`` images the heads train on a
    seeded sample and every image is then assigned to its nearest prototype. Collections
    too small for ``min_steps`` optimiser steps in ``epochs`` passes get more passes
    (300 by default: what rooms, 600 images, gets).

    Needs PyTorch to fit (training only); ``predict`` is NumPy.

    Attributes: ``prototypes_`` (k, d) unit vectors of the kept head, ``labels_``,
    ``head_losses_`` (loss of every head), ``best_head_``.
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_train": [Interval(Integral, 2, None, closed="left")],
        "min_steps": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, n_neighbors: int = 20, n_heads: int = 10,
                 epochs: int = 100, entropy_weight: float = 5.0, temperature: float = 0.2,
                 batch_size: int = 256, learning_rate: float = 1e-3, max_train: int = 20_000,
                 min_steps: int = 300, random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.n_heads = n_heads
        self.epochs = epochs
        self.entropy_weight = entropy_weight
        self.temperature = temperature
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_train = max_train
        self.min_steps = min_steps
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> SCANClusterer:
        from imgatlas._optional import import_torch
        from imgatlas.cluster._methods import _check_k, check_min_samples
        from imgatlas.reduce import knn_graph

        self._validate_params()
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        check_min_samples(X, 2, "SCAN")
        _check_k(self.n_clusters, X)
        torch = import_torch("the SCAN clustering head")
        seed = 0 if self.random_state is None else int(self.random_state)
        Xn = _unit(X)
        train = Xn
        if len(Xn) > self.max_train:
            rng = np.random.default_rng(seed)
            train = Xn[np.sort(rng.choice(len(Xn), self.max_train, replace=False))]
        nn = min(self.n_neighbors, len(train) - 1)
        if nn < 1:
            raise ValueError("SCAN needs at least 2 images to pair neighbours.")
        nbr = torch.from_numpy(knn_graph(train, nn).astype(np.int64))

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        T = torch.from_numpy(train)
        # The scale matters to Adam only (steps are relative to it); 0.1 is what was measured.
        W = torch.nn.Parameter(0.1 * torch.randn(self.n_heads, self.n_clusters, T.shape[1],
                                                 generator=gen))
        opt = torch.optim.Adam([W], lr=self.learning_rate)
        # Small collections fit in a batch or two per epoch; they get more passes instead.
        epochs = max(self.epochs, -(-self.min_steps * self.batch_size // len(T)))
        for _ in range(epochs):
            for b in torch.randperm(len(T), generator=gen).split(self.batch_size):
                pair = nbr[b, torch.randint(nn, (len(b),), generator=gen)]
                opt.zero_grad()
                pa = _softmax_heads(torch, W, T[b], self.temperature)
                pb = _softmax_heads(torch, W, T[pair], self.temperature)
                self._objective(torch, pa, pb).sum().backward()
                opt.step()

        with torch.no_grad():  # each head's loss over every neighbour pair, one head at a time
            losses = []
            for h in range(self.n_heads):
                p = _softmax_heads(torch, W[h:h + 1], T, self.temperature)
                losses.append(float(self._objective(torch, p[:, :, None, :], p[:, nbr, :])))
        self.head_losses_ = np.asarray(losses)
        self.best_head_ = int(np.argmin(self.head_losses_))
        protos = torch.nn.functional.normalize(W.detach()[self.best_head_], dim=1)
        self.prototypes_ = protos.numpy().astype(np.float32)
        self.labels_ = self._assign(Xn)
        return self

    def _objective(self, torch: Any, pa: Any, pb: Any) -> Any:
        """SCAN's loss per head: mean -log agreement of the pairs (``pa``, ``pb``: (heads,
        ..., k) probabilities, broadcast against each other) plus ``entropy_weight`` times the
        negative entropy of ``pa``'s mean assignment (low when clusters are even)."""
        agree = (pa * pb).sum(-1).clamp_min(1e-8)
        pm = pa.flatten(1, -2).mean(1)
        return (-torch.log(agree).flatten(1).mean(1)
                + self.entropy_weight * (pm * torch.log(pm.clamp_min(1e-8))).sum(1))

    def _assign(self, Xn: np.ndarray) -> np.ndarray:
        return (Xn @ self.prototypes_.T).argmax(1).astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self._assign(_unit(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        z = _unit(X) @ self.prototypes_.T / self.temperature
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)


def _unit(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(normalize(X), dtype=np.float32)


def _softmax_heads(torch: Any, W: Any, x: Any, temperature: float) -> Any:
    """(heads, n, k) cluster probabilities of the rows of ``x`` under every head."""
    protos = torch.nn.functional.normalize(W, dim=2)
    return torch.softmax(x @ protos.transpose(1, 2) / temperature, dim=2)
