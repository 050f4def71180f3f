"""Static figures of a report, drawn with matplotlib into PNG files.

Every function takes plain data and a path and returns the path, so figures can be drawn
(and tested) without a workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return path


def basic_figures(results: dict[str, Any], clusters: np.ndarray, sil: np.ndarray,
                  colors: list[str], assets: Path) -> dict[str, str]:
    """The figures every run gets, ``{name: file name}`` in ``assets``: the k sweep (when
    k was chosen) and the silhouettes (when there are any). Takes only plain data, so a
    report can draw them in its thumbnail process while it lays out the map."""
    figs: dict[str, str] = {}
    if results.get("k_selection"):
        k_selection(results["k_selection"], assets / "k_selection.png")
        figs["k_selection"] = "k_selection.png"
    if (~np.isnan(sil)).any():
        silhouette_plot(clusters, sil, colors, assets / "silhouette.png")
        figs["silhouette"] = "silhouette.png"
    return figs


def k_selection(sweep: dict[str, Any], path: Path) -> Path:
    """SSE with the elbow and the chosen k marked; silhouette, Davies-Bouldin, CH, BIC."""
    plt = _plt()
    rows = sweep["rows"]
    ks = [r["k"] for r in rows]
    panels = [("sse", "SSE (within-cluster sum of squares)"),
              ("silhouette", "mean silhouette (higher is better)"),
              ("davies_bouldin", "Davies-Bouldin (lower is better)"),
              ("calinski_harabasz", "Calinski-Harabasz (higher is better)")]
    if any("bic" in r for r in rows):
        panels.append(("bic", "BIC, GMM (lower is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.8))
    for ax, (key, title) in zip(np.atleast_1d(axes), panels, strict=True):
        vals = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.plot(ks, vals, "o-", ms=3, color="#3b6ea8")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("k", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.axvline(sweep["chosen_k"], color="#c0392b", lw=1, ls="--", label="chosen k")
        if key == "sse":
            e = ks.index(sweep["elbow_k"])
            ax.plot([ks[e]], [vals[e]], "s", color="#c0392b", ms=7, label="elbow")
            ax.legend(fontsize=7)
        if key == "silhouette":
            b = ks.index(sweep["best_silhouette_k"])
            ax.plot([ks[b]], [vals[b]], "^", color="#27ae60", ms=7, label="best")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def silhouette_plot(clusters: np.ndarray, sil: np.ndarray, colors: list[str], path: Path
                    ) -> Path:
    """The classic silhouette plot: each cluster's per-image values, sorted, side by side."""
    plt = _plt()
    ok = ~np.isnan(sil) & (clusters >= 0)
    cs = [c for c in np.unique(clusters[ok])]
    fig, ax = plt.subplots(figsize=(7, max(2.5, min(9.0, 0.25 * len(cs) + 2))))
    y = 0
    gap = max(2, int(ok.sum() * 0.01))
    for c in cs:
        v = np.sort(sil[ok & (clusters == c)])
        ax.fill_betweenx(np.arange(y, y + len(v)), 0, v, color=colors[c % len(colors)],
                         lw=0)
        ax.text(-0.02, y + len(v) / 2, str(c), ha="right", va="center", fontsize=7)
        y += len(v) + gap
    mean = float(np.mean(sil[ok])) if ok.any() else 0.0
    ax.axvline(mean, color="#c0392b", ls="--", lw=1, label=f"mean {mean:.3f}")
    ax.set_xlabel("silhouette", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(min(-0.1, float(np.nanmin(sil[ok])) if ok.any() else 0) - 0.05, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def dendrogram(linkage_matrix: np.ndarray, path: Path, *, cut: float | None = None,
               leaves: int = 40) -> Path:
    """The tree's top ``leaves`` merges (scipy's truncated dendrogram) with the cut drawn."""
    from scipy.cluster.hierarchy import dendrogram as scipy_dendrogram

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    scipy_dendrogram(linkage_matrix, truncate_mode="lastp", p=leaves, ax=ax,
                     color_threshold=cut if cut is not None else 0, no_labels=False,
                     leaf_font_size=6, above_threshold_color="#888888")
    if cut is not None:
        ax.axhline(cut, color="#c0392b", ls="--", lw=1)
    ax.set_ylabel("merge distance", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def pr_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """11-point interpolated precision-recall curve per code spec."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], "o-", ms=3, label=name)
    ax.set_xlabel("recall", fontsize=8)
    ax.set_ylabel("precision", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def learning_curves(rows: list[dict[str, float]], path: Path) -> Path:
    """Loss and accuracy per epoch, training and validation."""
    plt = _plt()
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(ep, [r[f"train_{key}"] for r in rows], label="training")
        ax.plot(ep, [r[f"val_{key}"] for r in rows], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(matrix: list[list[float]], classes: list[str], path: Path) -> Path:
    """Rows: true class; columns: predicted; normalised by row, counts as text."""
    plt = _plt()
    M = np.asarray(matrix, dtype=np.float64)
    norm = M / np.maximum(M.sum(1, keepdims=True), 1)
    n = len(classes)
    size = max(3.5, 0.45 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if M[i, j]:
                    ax.text(j, i, f"{int(M[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    return _save(fig, path)
