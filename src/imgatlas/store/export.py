"""Export features with their ids, paths and labels, written atomically."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas.store._io import io_errors


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with io_errors(f"writing {path}"):
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def write_parquet(out: Path, ids: np.ndarray, X: np.ndarray, rows: list[dict[str, Any]]
                  ) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(np.ascontiguousarray(X).reshape(-1))
    table = pa.table({
        "id": pa.array(ids, pa.int64()),
        "path": pa.array([r["path"] for r in rows], pa.string()),
        "label": pa.array([r["label"] for r in rows], pa.string()),
        "features": pa.FixedSizeListArray.from_arrays(flat, X.shape[1]),
    })
    _atomic(out, lambda p: pq.write_table(table, p))
    return [out]


def write_npy(out: Path, ids: np.ndarray, X: np.ndarray, rows: list[dict[str, Any]]
              ) -> list[Path]:
    """``out`` gets the (n, d) matrix; ``out.csv`` beside it the id, path, label of each row."""
    side = out.with_suffix(".csv")

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["row", "id", "path", "label"])
            for k, r in enumerate(rows):
                w.writerow([k, r["id"], r["path"], r["label"] or ""])

    def write_matrix(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, X)

    _atomic(out, write_matrix)
    _atomic(side, write_csv)
    return [out, side]


def write_table(out: Path, columns: list[str], rows: list[tuple]) -> None:
    """Rows to ``.csv`` or ``.parquet`` (by suffix), atomically."""
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [r[k] for r in rows] for k, c in enumerate(columns)})
        _atomic(out, lambda p: pq.write_table(table, p))
        return

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows(["" if v is None else v for v in r] for r in rows)

    _atomic(out, write_csv)
