"""What every face calls a cluster: the name a person gave it, else the suggested name
(marked as a suggestion), else ``cluster-N``; with its tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgatlas.errors import ConfigError
from imgatlas.names._suggest import Suggestion, suggest
from imgatlas.names._tags import class_head, image_tags
from imgatlas.store import Workspace


@dataclass(frozen=True)
class ClusterName:
    cluster: int
    size: int
    name: str | None  # a person's
    suggestion: Suggestion | None  # None when the features have no ImageNet classes

    @property
    def suggested_name(self) -> str | None:
        return self.suggestion.name if self.suggestion else None

    @property
    def display(self) -> str:
        """The name to show: the person's, else the suggestion, else ``cluster-N``."""
        if self.name:
            return self.name
        if self.cluster < 0:
            return "noise"
        return self.suggested_name or f"cluster-{self.cluster}"

    @property
    def suggested(self) -> bool:
        """Is :attr:`display` a suggestion nobody accepted yet?"""
        return not self.name and self.suggested_name is not None

    def as_dict(self) -> dict[str, Any]:
        s = self.suggestion
        return {"cluster": self.cluster, "size": self.size, "name": self.name,
                "suggested_name": self.suggested_name,
                "tags": [[t, share] for t, share in (s.tags if s else [])],
                "display": self.display, "suggested": self.suggested}


# A larger cluster is named from a seeded sample of this many members: the share of members
# under a WordNet node is then known within about 0.7 points (its standard error), and a
# million images are named in a second instead of ten.
NAME_SAMPLE = 5_000


def cluster_names(ws: Workspace, run_id: int, assignments: tuple[Any, ...] | None = None
                  ) -> dict[int, ClusterName]:
    """Every cluster of run ``run_id`` with its names, by cluster id. ``assignments``: the
    run's, when the caller has read them already."""
    run = ws.get_run(run_id, "cluster")
    ids, clusters = (assignments or ws.assignments(run["id"]))[:2]
    given = ws.cluster_names(run["id"])
    store = ws.run_store(run)
    members = {int(c): ids[clusters == c] for c in np.unique(clusters).tolist()}
    tower = _text_tower(store)
    if tower is not None and len(ids):  # open vocabulary: the text tower names them
        from imgatlas.names._vocabulary import name_clusters

        feats = {}
        for c, m in members.items():
            if c < 0:
                continue
            have, X = store.read(_sample(m, NAME_SAMPLE, c))
            feats[c] = X
        sugs = name_clusters(feats, tower)
        return {c: ClusterName(c, int(len(m)), given.get(c), sugs.get(c))
                for c, m in members.items()}
    named = class_head(store) is not None and len(ids) > 0
    if named:
        judged = {c: _sample(m, NAME_SAMPLE, c) for c, m in members.items()}
        tid, classes, probs = image_tags(ws, store, np.concatenate(list(judged.values())))
    out = {}
    for c, m in members.items():
        sug = None
        if named:  # tid: ids ascending
            rows = np.minimum(np.searchsorted(tid, judged[c]), max(len(tid) - 1, 0))
            rows = rows[tid[rows] == judged[c]] if len(tid) else rows[:0]
            sug = suggest(classes[rows], probs[rows]) if len(rows) else None
        out[c] = ClusterName(c, int(len(m)), given.get(c), sug)
    return out


def _text_tower(store: Any) -> Any:
    """The text tower of the backbone that made ``store``, when it has one and its export
    is at hand (names are a suggestion: a missing export leaves clusters unnamed)."""
    record = store.cfg.get("backbone", {})
    if not (record.get("extra") or {}).get("text_tower") or store.cfg.get("view"):
        return None
    from imgatlas.errors import ImgatlasError
    from imgatlas.index import store_backbone

    try:
        return store_backbone(store).text_tower()
    except ImgatlasError:
        return None


def _sample(members: np.ndarray, size: int, cluster: int) -> np.ndarray:
    """At most ``size`` of ``members``, the same ones on every call (seeded by the cluster)."""
    if len(members) <= size:
        return members
    rng = np.random.default_rng(abs(cluster))
    return np.sort(rng.choice(members, size, replace=False))


def accept_suggestions(ws: Workspace, run_id: int, clusters: list[int] | None = None
                       ) -> dict[int, str]:
    """Give clusters (all of the run's when None) their suggested name as their own; those
    named already or with no suggestion are left. Returns what was named."""
    names = cluster_names(ws, run_id)
    chosen = names if clusters is None else {c: names[c] for c in clusters if c in names}
    missing = [c for c in (clusters or []) if c not in names]
    if missing:
        raise ConfigError(f"Run {run_id} has no cluster {missing[0]}.")
    out = {}
    for c, n in chosen.items():
        if n.suggested and c >= 0:
            ws.name_cluster(run_id, c, n.suggested_name)
            out[c] = n.suggested_name
    return out
