"""What a clustering run left in the catalog: assignments, centre distances, names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from imgatlas.errors import ConfigError

if TYPE_CHECKING:
    from imgatlas.store.workspace import Workspace


class ClustersMixin:
    """The ``assignments``, ``centre_distance`` and ``cluster_names`` tables."""

    _con: Any

    def record_assignments(self: Workspace, run_id: int, image_ids: np.ndarray,
                           clusters: np.ndarray, silhouettes: np.ndarray,
                           distances: np.ndarray) -> None:
        """One row per image: its cluster (-1 = noise), silhouette and squared distance to
        its cluster's centre (NaN = none), in one transaction."""
        with self.transaction("recording cluster assignments") as con:
            con.executemany(
                "INSERT INTO assignments(run_id, image_id, cluster, silhouette) "
                "VALUES (?,?,?,?)",
                [(run_id, int(i), int(c), None if np.isnan(s) else float(s))
                 for i, c, s in zip(image_ids, clusters, silhouettes, strict=True)])
            con.executemany(
                "INSERT INTO centre_distance(run_id, image_id, distance) VALUES (?,?,?)",
                [(run_id, int(i), float(d)) for i, d in zip(image_ids, distances, strict=True)
                 if not np.isnan(d)])

    def assignments(self: Workspace, run_id: int
                    ) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
        """``(image ids, clusters, folder labels, silhouettes)`` of a run, in id order."""
        rows = self._con.execute(
            "SELECT a.image_id, a.cluster, i.label, a.silhouette FROM assignments a "
            "JOIN images i ON i.id = a.image_id WHERE a.run_id=? ORDER BY a.image_id",
            (run_id,)).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        clusters = np.array([r[1] for r in rows], dtype=np.int64)
        sil = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
        return ids, clusters, [r[2] for r in rows], sil

    def cluster_members(self: Workspace, run_id: int, clusters: list[int]) -> set[int]:
        """Image ids in any of ``clusters`` of run ``run_id``."""
        q = ",".join("?" * len(clusters))
        return {r[0] for r in self._con.execute(
            f"SELECT image_id FROM assignments WHERE run_id=? AND cluster IN ({q})",  # noqa: S608
            (run_id, *clusters))}

    def cluster_sizes(self: Workspace, run_id: int) -> dict[int, int]:
        return dict(self._con.execute(
            "SELECT cluster, count(*) FROM assignments WHERE run_id=? GROUP BY cluster "
            "ORDER BY cluster", (run_id,)))

    def clusters_of(self: Workspace, run_id: int, image_ids: list[int]) -> dict[int, int]:
        """``{image id: cluster}`` in run ``run_id`` for ``image_ids``."""
        q = ",".join("?" * len(image_ids))
        return dict(self._con.execute(
            f"SELECT image_id, cluster FROM assignments WHERE run_id=? AND image_id IN ({q})",  # noqa: S608
            (run_id, *image_ids))) if image_ids else {}

    def image_clusters(self: Workspace, image_id: int) -> dict[int, int]:
        """``{run id: cluster}`` for every run that placed ``image_id``."""
        return dict(self._con.execute(
            "SELECT run_id, cluster FROM assignments WHERE image_id=?", (int(image_id),)))

    def centre_distances(self: Workspace, run_id: int) -> dict[int, float]:
        return dict(self._con.execute(
            "SELECT image_id, distance FROM centre_distance WHERE run_id=?", (run_id,)))

    def cluster_names(self: Workspace, run_id: int) -> dict[int, str]:
        return dict(self._con.execute(
            "SELECT cluster, name FROM cluster_names WHERE run_id=?", (run_id,)))

    def name_cluster(self: Workspace, run_id: int, cluster: int, name: str) -> None:
        """Name cluster ``cluster`` of run ``run_id`` (an empty name removes it)."""
        if not self._con.execute(
                "SELECT 1 FROM assignments WHERE run_id=? AND cluster=? LIMIT 1",
                (run_id, cluster)).fetchone():
            raise ConfigError(f"Run {run_id} has no cluster {cluster}.")
        with self.transaction("naming a cluster") as con:
            if name:
                con.execute("INSERT OR REPLACE INTO cluster_names VALUES (?,?,?)",
                            (run_id, cluster, name))
            else:
                con.execute("DELETE FROM cluster_names WHERE run_id=? AND cluster=?",
                            (run_id, cluster))

    def cluster_table(self: Workspace, run_id: int) -> list[tuple]:
        """One row per image: id, path, label, cluster, cluster name, silhouette."""
        return self._con.execute(
            "SELECT a.image_id, i.display, i.label, a.cluster, n.name, a.silhouette "
            "FROM assignments a JOIN images i ON i.id=a.image_id LEFT JOIN cluster_names n "
            "ON n.run_id=a.run_id AND n.cluster=a.cluster WHERE a.run_id=? "
            "ORDER BY a.image_id", (run_id,)).fetchall()
