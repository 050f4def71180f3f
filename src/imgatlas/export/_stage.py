"""The export stage: the organised collection written out as folders, recorded as a run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from imgatlas.errors import ConfigError
from imgatlas.export._plan import plan_export
from imgatlas.export._write import MANIFEST, check_out, write_export
from imgatlas.names import cluster_names
from imgatlas.store import Workspace


def export_folders(ws: Workspace, out: Path, *, run_id: int | None = None,
                   mode: str = "link") -> dict[str, Any]:
    """Write one folder per cluster of run ``run_id`` (default: the latest) under ``out``,
    named by the cluster's name, else its suggested name, else ``cluster-N``;
    near-duplicate copies and flagged images in folders of their own, and
    ``out/manifest.csv``. Returns ``{"out", "manifest", "folders": {name: count}}``."""
    t0 = time.perf_counter()
    run = ws.get_run(run_id, "cluster")
    if run["status"] != "done":
        raise ConfigError(f"Run {run['id']} is {run['status']}, not done; nothing to export.")
    roots = sorted({r.root for r in ws.images() if r.root is not None})
    real = check_out(Path(out), roots, ws.path)
    params = {"run": run["id"], "out": str(real), "mode": mode}
    with ws.recording("export", params) as rec:
        named = cluster_names(ws, run["id"])
        plan = plan_export(ws, run["id"], {c: n.display for c, n in named.items()
                                           if n.name or n.suggested},
                           {c: "user" if n.name else "suggested" for c, n in named.items()
                            if n.name or n.suggested})
        folders = write_export(plan, real, mode)
        rec.results = {"out": str(real), "manifest": str(real / MANIFEST),
                       "folders": folders, "images": len(plan), "run_id": run["id"],
                       "mode": mode, "seconds": round(time.perf_counter() - t0, 3)}
    return rec.results
