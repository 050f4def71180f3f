"""DSH-style training of a binary layer sign(xW + b) on the collection's neighbour graph.

Deep Supervised Hashing (Liu et al., CVPR 2016) trains real-valued outputs u so that
similar pairs are close, dissimilar pairs at least a margin apart, with a term pulling
every |u_j| to 1 so that taking the sign loses little:

    L = 1/2 |u_i - u_j|^2                      (similar pairs)
      + 1/2 max(m - |u_i - u_k|^2, 0)           (dissimilar pairs), m = 2 * bits
      + alpha * (| |u_i| - 1 |_1 + | |u_k| - 1 |_1)

Here there are no labels: "similar" means one of an image's nearest neighbours in the
kNN-smoothed collection, "dissimilar" a random image (almost always another class when
there are more than a few classes). The layer is linear, so the gradient is written out
below and the optimiser is plain Adam in NumPy: index building needs neither PyTorch nor a
GPU, and the result is deterministic for a seed.
"""

from __future__ import annotations

import numpy as np

from imgatlas._adam import Adam


def train_dsh(X: np.ndarray, W: np.ndarray, b: np.ndarray, neighbours: np.ndarray, *,
              epochs: int = 10, alpha: float = 1.0, lr: float = 1e-3, batch: int = 256,
              max_anchors: int = 100_000, random_state: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune the layer ``u = (X @ W + b) * scale`` (``W``: d x bits) with the DSH loss.

    ``neighbours`` (n x k row indices) gives the similar pairs. Each epoch visits at most
    ``max_anchors`` images (a seeded sample on large collections). ``scale`` is fixed so
    that the initial outputs have norm sqrt(bits), the norm of a +-1 code.
    Returns the new ``(W, b)``; the inputs are not modified.
    """
    rng = np.random.default_rng(random_state)
    X = np.ascontiguousarray(X, dtype=np.float32)
    W = W.astype(np.float32).copy()
    b = b.astype(np.float32).copy()
    n, bits = len(X), W.shape[1]
    norms = np.linalg.norm(_apply(X[: min(n, 10_000)], W, b), axis=1)
    scale = np.float32(np.sqrt(bits) / max(float(norms.mean()), 1e-12))
    margin = 2.0 * bits
    adam = Adam([W, b], lr)
    for _ in range(epochs):
        order = rng.permutation(n)[:max_anchors]
        for start in range(0, len(order), batch):
            i = order[start:start + batch]
            j = neighbours[i, rng.integers(0, neighbours.shape[1], len(i))]
            k = rng.integers(0, n, len(i))
            rows = np.concatenate([i, j, k])
            u = _apply(X[rows], W, b) * scale
            ui, uj, uk = np.split(u, 3)
            m = len(i)
            g = np.zeros_like(u)
            d_pos = (ui - uj) / m
            d_neg = ui - uk
            active = (margin - (d_neg * d_neg).sum(1)) > 0
            d_neg = d_neg * (active[:, None] / m)
            g[:m] += d_pos - d_neg
            g[m:2 * m] -= d_pos
            g[2 * m:] += d_neg
            # binarisation term on the anchors and the random images
            reg = alpha / m * np.sign(np.abs(u) - 1) * np.sign(u)
            reg[m:2 * m] = 0
            g += reg
            g *= scale / bits
            adam.step([X[rows].T @ g, g.sum(0)])
    return W, b


def _apply(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return X @ W + b
