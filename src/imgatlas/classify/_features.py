"""Which features a classifier or label spreading reads: one store, or several side by side
(Lite0 and Lite2: a head on both beat either alone on held-out photos)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from imgatlas import defaults


def read_features(stores: list[Any], ids: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` of the images (all, or ``ids``) every store holds; several stores'
    L2-normalised vectors side by side (a head on two backbones at once), in the stores'
    order."""
    have, X = stores[0].read(ids)
    if len(stores) == 1:
        return have, X
    parts = [normalize(X)]
    for s in stores[1:]:
        h2, X2 = s.read(have)
        keep = np.isin(have, h2)
        have, parts = have[keep], [p[keep] for p in parts] + [normalize(X2)]
    return have, np.hstack(parts).astype(np.float32)


def second_store(ws: Any, base: Any) -> Any | None:
    """The store of :data:`~imgatlas.defaults.SECOND_BACKBONE` to read beside ``base`` when
    ``base`` is the default backbone's (as made by ``train``'s default head or
    ``label-propagate``), else None."""
    if not pairs_with_second(base):
        return None
    return next((s for s in reversed(ws.feature_stores())
                 if s.backbone == defaults.SECOND_BACKBONE and not s.cfg.get("view")), None)


def pairs_with_second(base: Any) -> bool:
    """Whether the store ``base`` is read with the second backbone's beside it: the default
    backbone's own features, not L2-normalised on the way in."""
    return base.backbone == defaults.BACKBONE and not base.cfg.get("l2_normalize")
