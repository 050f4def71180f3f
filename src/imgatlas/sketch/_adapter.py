"""A small adapter that brings sketch features and photo line-map features closer, learnt
from sketch-photo pairs of other classes (zero-shot: never the classes it will search).

Two residual linear maps, one per side, ``a(x) = normalize(x + x A + b)``, start at the
identity (so an untrained adapter is the no-adapter search) and are trained with a
symmetric InfoNCE loss: each sketch against every photo line map of the batch, positives
being the photos of the sketch's class (supervised contrastive; the sketch's own photo
among them), temperature 0.1, weight decay pulling A towards zero, early stopping on
held-out pairs. PyTorch to train (seconds to minutes on a CPU); NumPy to apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas.errors import ConfigError

TEMPERATURE = 0.1
WEIGHT_DECAY = 1e-3
EPOCHS = 60
PATIENCE = 8


@dataclass
class Adapter:
    A_sketch: np.ndarray
    b_sketch: np.ndarray
    A_photo: np.ndarray
    b_photo: np.ndarray
    meta: dict[str, Any]

    @staticmethod
    def _apply(X: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
        Xn = normalize(np.asarray(X, np.float32))
        return normalize(Xn + Xn @ A + b).astype(np.float32)

    def sketches(self, X: np.ndarray) -> np.ndarray:
        return self._apply(X, self.A_sketch, self.b_sketch)

    def photos(self, X: np.ndarray) -> np.ndarray:
        return self._apply(X, self.A_photo, self.b_photo)

    @property
    def identity(self) -> str:
        return str(self.meta.get("identity", ""))


def load_adapter(folder: str | Path) -> Adapter:
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
        if meta.get("kind") != "sketch-adapter":
            raise ConfigError(f"{folder} is a model folder, but not a sketch adapter.")
        with np.load(folder / "adapter.npz") as z:
            return Adapter(z["A_sketch"], z["b_sketch"], z["A_photo"], z["b_photo"], meta)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{folder} is not a sketch adapter folder ({e}).") from e


def train_adapter(S: np.ndarray, s_cls: np.ndarray, P: np.ndarray, p_cls: np.ndarray, *,
                  seed: int = 0, epochs: int = EPOCHS, progress: Any = None
                  ) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """Fit the two maps on sketch features ``S`` (classes ``s_cls``) and photo features
    ``P`` (classes ``p_cls``). A seeded fifth of the *classes* is held out for early
    stopping (mAP of their sketches against their photos): what matters is how the maps
    carry to classes they never saw, and held-out sketches of seen classes overstate it."""
    from imgatlas._optional import import_torch

    torch = import_torch("training a sketch adapter")
    from imgatlas.evaluate.retrieval import average_precision

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    S = normalize(S).astype(np.float32)
    P = normalize(P).astype(np.float32)
    classes = sorted(set(s_cls.tolist()) | set(p_cls.tolist()))
    si = np.array([classes.index(c) for c in s_cls])
    pi = np.array([classes.index(c) for c in p_cls])
    cls_order = rng.permutation(len(classes))
    val_cls = cls_order[:max(1, len(classes) // 5)]
    val, tr = np.flatnonzero(np.isin(si, val_cls)), np.flatnonzero(~np.isin(si, val_cls))
    pval, ptr = np.flatnonzero(np.isin(pi, val_cls)), np.flatnonzero(~np.isin(pi, val_cls))
    if len(classes) < 3 or not len(tr) or not len(pval):
        raise ConfigError("A sketch adapter needs pairs of at least 3 classes.")
    d = S.shape[1]
    params = {k: torch.zeros(shape, requires_grad=True)
              for k, shape in (("A_sketch", (d, d)), ("b_sketch", (d,)),
                               ("A_photo", (d, d)), ("b_photo", (d,)))}
    opt = torch.optim.AdamW(params.values(), lr=1e-3, weight_decay=WEIGHT_DECAY)
    St, Pt = torch.from_numpy(S), torch.from_numpy(P)
    F = torch.nn.functional

    def fwd(X: Any, side: str) -> Any:
        return F.normalize(X + X @ params[f"A_{side}"] + params[f"b_{side}"], dim=1)

    def val_map() -> float:
        with torch.no_grad():
            q = fwd(St[val], "sketch").numpy()
            g = fwd(Pt[pval], "photo").numpy()
        rel = pi[pval][np.argsort(-(q @ g.T), axis=1)] == si[val][:, None]
        return float(average_precision(rel, rel.sum(1)).mean())

    best, best_state, bad, history = val_map(), None, 0, []
    best_state = {k: v.detach().clone() for k, v in params.items()}
    history.append({"epoch": 0, "loss": float("nan"), "val_map": best})
    batch = 128
    for epoch in range(1, epochs + 1):
        total = 0.0
        perm = rng.permutation(tr)
        for s0 in range(0, len(perm), batch):
            b = perm[s0:s0 + batch]
            # photos of the batch's classes, plus random others as negatives
            photos = np.unique(np.concatenate([
                rng.choice(np.flatnonzero(pi == c), 1) for c in np.unique(si[b])]
                + [rng.choice(ptr, min(len(ptr), batch), replace=False)]))
            zs, zp = fwd(St[b], "sketch"), fwd(Pt[photos], "photo")
            logits = zs @ zp.T / TEMPERATURE
            pos = torch.from_numpy((si[b][:, None] == pi[photos][None, :]).astype(np.float32))
            logp = F.log_softmax(logits, dim=1)
            loss_s = -(logp * pos).sum(1) / pos.sum(1).clamp_min(1)
            logp_p = F.log_softmax(logits.T, dim=1)
            pos_t = pos.T
            has = pos_t.sum(1) > 0
            loss_p = -(logp_p * pos_t).sum(1)[has] / pos_t.sum(1)[has]
            loss = loss_s.mean() + (loss_p.mean() if has.any() else 0.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        m = val_map()
        history.append({"epoch": epoch, "loss": total / len(tr), "val_map": m})
        if progress is not None:
            progress(history[-1])
        if m > best + 1e-4:
            best, bad = m, 0
            best_state = {k: v.detach().clone() for k, v in params.items()}
        else:
            bad += 1
            if bad >= PATIENCE:
                break
    return {k: v.numpy().astype(np.float32) for k, v in best_state.items()}, history
