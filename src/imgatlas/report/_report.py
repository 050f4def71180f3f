"""The report stage: a recorded run -> a folder that opens offline in any browser.

Layout of the output folder::

    index.html            summary, sizes, montages, map, k selection, validation, scores
    clusters/c<C>-<P>.html  every member of cluster C, page P
    compare-<A>-<B>.html  (``write_comparison``) two runs side by side
    assets/               report.css, report.js, figures (PNG), thumbs/<sha>.jpg

Every string that comes from the data (paths, labels, cluster names) reaches the page
through Jinja2's autoescaping or, for the map, through JSON read by ``textContent``; nothing
is ever inserted as markup. Every link and image is a relative path inside the folder.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._package_data import package_file
from imgatlas._templates import template_env
from imgatlas._text import printable
from imgatlas._version import __version__
from imgatlas.cluster import cophenetic_table, score_run, tree_and_cut
from imgatlas.errors import ConfigError
from imgatlas.evaluate.internal import centre_distances
from imgatlas.names import cluster_names
from imgatlas.report import _figures
from imgatlas.report._cleanup import cleanup_section
from imgatlas.report._layout import clustering_space, map_coordinates, rank_by_centrality
from imgatlas.report._models import write_model_pages
from imgatlas.report._thumbs import ThumbnailJob
from imgatlas.store import Workspace

PER_PAGE = 200  # thumbnails per cluster page
MONTAGE = 8  # representative + random images per cluster on the front page
OUTLIERS = 24  # lowest-silhouette images shown
# Above FULL_MAX images a report shows a part: the map a seeded sample of MAP_SAMPLE images,
# each cluster's pages the images closest to its centre within a THUMBS budget (a million
# thumbnails and a million-point map would take hours and gigabytes, and nobody pages
# through them; search and serve reach every image).
FULL_MAX = 50_000
MAP_SAMPLE = 20_000
THUMBS = 40_000
# tab20 reordered so neighbouring cluster ids get distinct hues
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
           "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]
NOISE_COLOR = "#bbbbbb"


def color(c: int) -> str:
    return NOISE_COLOR if c < 0 else PALETTE[c % len(PALETTE)]


def _env() -> Any:
    env = template_env("imgatlas.report")
    env.filters["color"] = color
    return env


def _relative_display(ws: Workspace, ids: np.ndarray) -> dict[int, str]:
    """Paths shown relative to the scanned folder (shorter, and no home directory leaks),
    in printable form: a name that is not valid UTF-8 shows its bytes as \\xNN."""
    out = {}
    for row in ws.images_by_id(ids.tolist()).values():
        try:
            rel = os.path.relpath(row.path, row.root) if row.root else row.display
        except ValueError:
            rel = row.display
        out[row.id] = printable(rel) if not printable(rel).startswith("..") else row.display
    return {int(i): out.get(int(i), str(i)) for i in ids}


def _copy_assets(out: Path) -> Path:
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name in ("report.css", "report.js"):
        (assets / name).write_bytes(package_file(f"report/static/{name}").read_bytes())
    return assets


def _place_thumbs(thumbs: dict[int, Path | None], assets: Path) -> dict[int, str | None]:
    """Hard-link (or copy) each cached thumbnail into the report; return relative paths."""
    folder = assets / "thumbs"
    folder.mkdir(parents=True, exist_ok=True)
    rel: dict[int, str | None] = {}
    for i, src in thumbs.items():
        if src is None:
            rel[i] = None
            continue
        dst = folder / src.name
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        rel[i] = f"thumbs/{src.name}"
    return rel


def _check_out(out: Path, ws: Workspace) -> Path:
    out = Path(out).resolve()
    if out == ws.path.resolve() or ws.path.resolve() in out.parents and out.name in (
            "features", "thumbs", "maps", "spaces", "index", "index-sketch", "models"):
        raise ConfigError(f"Refusing to write a report over workspace data at {out}.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder.")
    return out


def write_report(ws: Workspace, out: Path, run_id: int | None = None, *, map_method: str = "auto",
                 per_page: int = PER_PAGE, progress: bool = False) -> dict[str, Any]:
    """Write the report of cluster run ``run_id`` (default: the latest) into folder ``out``:
    choose what to show, make its thumbnails (in the background while the map is laid
    out), draw the figures, gather each page's data, render."""
    t0 = time.perf_counter()
    out = _check_out(out, ws)
    run = ws.get_run(run_id, "cluster")
    if run["status"] != "done":
        raise ConfigError(f"Run {run['id']} is {run['status']}, not done; nothing to report.")
    sel = _choose(ws, run, per_page)
    cleanup = cleanup_section(ws, sel.ids)
    thumbed = np.unique(np.concatenate([sel.ids[sel.need], np.array(
        (cleanup or {}).get("ids", []), dtype=np.int64)]))
    rows = ws.images_by_id(thumbed.tolist())
    display = _relative_display(ws, thumbed)
    assets = _copy_assets(out)
    # drawn in the thumbnail process (when there is one) while this one lays out the map:
    # at 10,000 images the report took 5.9-6.1 s so, 6.4-6.7 s with them drawn here after it
    figures_job = (_figures.basic_figures, (run["results"], sel.clusters[sel.mapped],
                                            sel.sil, PALETTE, assets))
    thumb_job = ThumbnailJob(ws, [rows[int(i)] for i in thumbed if int(i) in rows],
                             progress=progress, first=figures_job)
    X, Zm = clustering_space(ws, run, sel.ids[sel.mapped],
                             reduce=run["results"]["method"] == "agglomerative")
    Z = Zm if sel.Z is None else sel.Z[sel.mapped]
    xy, map_used = map_coordinates(ws, run, X, map_method, ids=sel.ids[sel.mapped])
    thumb_rel = _place_thumbs(thumb_job.result(), assets)
    if cleanup is not None:  # its images as cards, like the clusters'
        for c in [x for g in cleanup["groups"] for x in [g["keep_card"], *g["copies"]]] + [
                x for v in cleanup["flags"].values() for x in v] + [
                x for lk in cleanup["leaks"] for x in lk["members"]]:
            c.update(thumb=thumb_rel.get(c["id"]), name=display.get(c["id"], str(c["id"])),
                     label=None, silhouette=None)
    has_labels = any(lab is not None for lab in sel.labels)
    read = (sel.ids, sel.clusters, sel.labels, sel.sil)  # the run's assignments, read once
    scores = score_run(ws, run["id"], read) if has_labels else None
    retrieval = _retrieval(ws)
    figures = _all_figures(run, Z, sel, retrieval, assets, thumb_job.first_result())
    ctx, card, pages = _page_data(ws, run, sel, xy, map_used, thumb_rel, display, scores,
                                  figures, retrieval, cleanup, Z, per_page)
    env = _env()
    ctx["models"] = write_model_pages(ws, out, assets, env, ctx, _place_thumbs)
    (out / "index.html").write_text(env.get_template("index.html.j2").render(**ctx),
                                    encoding="utf-8")
    _write_cluster_pages(env, out, ctx, sel.members_shown, card, pages, per_page)
    return {"run_id": run["id"], "out": str(out), "index": str(out / "index.html"),
            "n_images": int(len(sel.ids)),
            "n_clusters": len([c for c in pages if c >= 0]),
            "map": map_used, "bytes": _folder_bytes(out),
            "seconds": round(time.perf_counter() - t0, 3)}


@dataclass
class _Selection:
    """What the report shows of a run: which images, in which order, on which pages."""

    ids: np.ndarray
    clusters: np.ndarray
    labels: list[str | None]
    sil: np.ndarray
    order: dict[int, np.ndarray]  # each cluster's rows, centre outwards
    part: bool  # a large run: a sample on the map, the first pages of each cluster
    mapped: np.ndarray  # rows on the map
    shown: dict[int, int]  # members listed per cluster
    members_shown: dict[int, np.ndarray]
    lowest: np.ndarray  # the lowest silhouettes
    noise: np.ndarray
    randoms: dict[int, np.ndarray]  # a seeded sample beyond each cluster's montage
    need: np.ndarray  # rows whose thumbnails some page shows
    Z: np.ndarray | None  # the clustering space, when it had to be rebuilt


def _choose(ws: Workspace, run: dict[str, Any], per_page: int) -> _Selection:
    ids, clusters, labels, sil = ws.assignments(run["id"])
    rng = np.random.default_rng(run["params"].get("seed", 0))
    dist = _centre_distances(ws, run["id"], ids)
    Z = None
    if dist is None:  # a run recorded before distances were kept
        _, Z = clustering_space(ws, run, ids)
        dist = centre_distances(Z, clusters)
    order = rank_by_centrality(dist, clusters)
    part = len(ids) > FULL_MAX
    mapped = (np.sort(rng.choice(len(ids), MAP_SAMPLE, replace=False)) if part
              else np.arange(len(ids)))
    shown = _shown(order, per_page) if part else {c: len(m) for c, m in order.items()}
    members_shown = {c: m[:shown[c]] for c, m in order.items()}
    ok_sil = np.flatnonzero(~np.isnan(sil))
    lowest = ok_sil[np.argsort(sil[ok_sil], kind="stable")[:OUTLIERS]]
    noise = order.get(-1, np.array([], int))
    randoms = {c: (np.sort(rng.choice(m[MONTAGE:], min(MONTAGE, len(m) - MONTAGE),
                                      replace=False)) if len(m) > MONTAGE else m[MONTAGE:])
               for c, m in order.items()}
    need = np.unique(np.concatenate([mapped, lowest, noise[:PER_PAGE], *members_shown.values(),
                                     *randoms.values(), *(m[:MONTAGE] for m in order.values())]
                                    ).astype(np.int64))
    return _Selection(ids, clusters, labels, sil, order, part, mapped, shown, members_shown,
                      lowest, noise, randoms, need, Z)


def _all_figures(run: dict[str, Any], Z: np.ndarray, sel: _Selection,
                 retrieval: dict[str, Any] | None, assets: Path,
                 drawn: dict[str, str] | None = None) -> dict[str, str]:
    """Every figure of the report; ``drawn``: the basic ones, already drawn elsewhere."""
    figures = _draw_figures(run, Z, sel.clusters[sel.mapped], sel.sil, assets, drawn)
    curves = {k: v["pr_curve"] for k, v in (retrieval or {}).get("codes", {}).items()
              if "pr_curve" in v}
    if curves:
        _figures.pr_curves(curves, assets / "pr_curves.png")
        figures["pr_curves"] = "pr_curves.png"
    return figures


def _page_data(ws: Workspace, run: dict[str, Any], sel: _Selection, xy: np.ndarray,
               map_used: str, thumb_rel: dict[int, str | None], display: dict[int, str],
               scores: dict[str, Any] | None, figures: dict[str, str],
               retrieval: dict[str, Any] | None, cleanup: dict[str, Any] | None,
               Z: np.ndarray, per_page: int
               ) -> tuple[dict[str, Any], Callable[[int], dict[str, Any]], dict[int, int]]:
    """The pages' context (cluster cards, the map's data, the run's figures and scores),
    the card of a row, and each cluster's number of pages."""
    ids, clusters, labels, sil, res = sel.ids, sel.clusters, sel.labels, sel.sil, run["results"]
    named = cluster_names(ws, run["id"], (ids, clusters, labels, sil))
    # a person's name, else the suggestion (marked as one); cluster-N stays the id alone
    names = {c: n.display for c, n in named.items() if n.name or n.suggested}
    cluster_ids = sorted(int(c) for c in np.unique(clusters))

    def card(r: int) -> dict[str, Any]:
        i = int(ids[r])
        return {"id": i, "thumb": thumb_rel[i], "name": display[i], "label": labels[r],
                "cluster": int(clusters[r]),
                "silhouette": None if np.isnan(sil[r]) else float(sil[r])}

    pages = {c: max(1, -(-sel.shown[c] // per_page)) for c in cluster_ids}
    cluster_cards = [{
        "id": c, "name": names.get(c), "suggested": named[c].suggested,
        "tags": named[c].suggestion.tags[:3] if named[c].suggestion else [],
        "size": int(len(sel.order[c])), "color": color(c), "shown": int(sel.shown[c]),
        "silhouette": (res.get("internal", {}).get("silhouette_per_cluster") or {})
        .get(str(c)),
        "representatives": [card(r) for r in sel.order[c][:MONTAGE]],
        "random": [card(r) for r in sel.randoms[c]], "pages": pages[c],
        "composition": (scores or {}).get("composition", {}).get(str(c)),
    } for c in cluster_ids]
    label_names = sorted({lab for lab in labels if lab is not None})
    label_index = {lab: j for j, lab in enumerate(label_names)}
    mapped = sel.mapped
    map_data = {
        "x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist(),
        "cluster": clusters[mapped].tolist(), "id": ids[mapped].tolist(),
        "label": [label_index.get(labels[r], -1) if labels[r] is not None else -1
                  for r in mapped],
        "labels": label_names, "name": [display[int(ids[r])] for r in mapped],
        "thumb": [thumb_rel[int(ids[r])] or "" for r in mapped],
        "page": {str(c): f"clusters/c{c}-1.html" for c in cluster_ids},
        "palette": PALETTE, "noise": NOISE_COLOR,
        "clusterNames": {str(c): n + (" (suggested)" if named[c].suggested else "")
                         for c, n in names.items()},
    }
    return {
        "title": f"imgatlas report: run {run['id']}", "version": __version__,
        "run": run, "res": res, "summary": _summary(ws, run, map_used),
        "clusters": cluster_cards,
        "max_size": max(c["size"] for c in cluster_cards), "scores": scores,
        "figures": figures, "map_json": map_data, "map_method": map_used,
        "map_sample": int(len(mapped)) if sel.part else None, "n_images": int(len(ids)),
        "lowest": [card(r) for r in sel.lowest],
        "noise": [card(r) for r in sel.noise[:PER_PAGE]],
        "n_noise": int(len(sel.noise)), "cophenetic": _cophenetic_table(run, Z),
        "retrieval": retrieval, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "root": "", "home": True, "cleanup": cleanup,
    }, card, pages


def _shown(order: dict[int, np.ndarray], per_page: int) -> dict[int, int]:
    """How many of each cluster's members (centre outwards) a part report shows: THUMBS
    shared out, whole pages, at least one page per cluster."""
    each = max(per_page, (THUMBS // max(1, len(order))) // per_page * per_page)
    return {c: min(len(m), each) for c, m in order.items()}


def _centre_distances(ws: Workspace, run_id: int, ids: np.ndarray) -> np.ndarray | None:
    got = ws.centre_distances(run_id)
    if not got:
        return None
    return np.array([got.get(int(i), np.nan) for i in ids], dtype=np.float64)


def _write_cluster_pages(env: Any, out: Path, ctx: dict[str, Any], order: dict[int, np.ndarray],
                         card: Any, pages: dict[int, int], per_page: int) -> None:
    folder = out / "clusters"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("c*.html"):  # a cluster that no longer exists must not linger
        old.unlink()
    tpl = env.get_template("cluster.html.j2")
    by_id = {c["id"]: c for c in ctx["clusters"]}
    for c, members in order.items():
        for p in range(1, pages[c] + 1):
            chunk = members[(p - 1) * per_page: p * per_page]
            html = tpl.render(**{**ctx, "root": "../", "cluster": by_id[c], "page": p,
                                 "n_pages": pages[c], "cards": [card(r) for r in chunk],
                                 "title": f"cluster {c} (page {p} of {pages[c]})"})
            (folder / f"c{c}-{p}.html").write_text(html, encoding="utf-8")


def _folder_bytes(out: Path) -> int:
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def _summary(ws: Workspace, run: dict[str, Any], map_used: str) -> dict[str, Any]:
    counts = ws.status_counts()
    skipped = [{"status": f["status"], "reason": f["reason"], "name": f["path"]}
               for f in ws.unusable_images(limit=500)]
    reasons = [{"status": s, "n": n} for s, n in sorted(counts.items()) if s != "ok"]
    params, res = run["params"], run["results"]
    fs = ws.feature_store(params["features"])
    store = (fs.backbone, fs.dim) if fs is not None else None
    k_sel = res.get("k_selection")
    if k_sel:
        how_k = k_sel["reason"]
    elif res["method"] in ("dbscan", "hdbscan"):
        how_k = f"found by {res['method'].upper()} (density-based; no k is given)"
    else:
        how_k = f"given: k={res['k']}"
    steps = {}
    for kind in ("scan", "embed"):
        done = [r for r in ws.runs(kind) if r["status"] == "done" and r["finished_at"]]
        if done:
            steps[kind] = round(done[-1]["finished_at"] - done[-1]["started_at"], 2)
    steps.update({f"cluster: {k}": v for k, v in res.get("timings", {}).items()})
    return {
        "found": sum(counts.values()), "used": res["n_images"],
        "usable": counts.get("ok", 0), "reasons": reasons, "skipped": skipped,
        "n_skipped": sum(n for s, n in counts.items() if s not in ("ok", "missing")),
        "backbone": store[0] if store else params["features"], "dim": store[1] if store else None,
        "features": params["features"], "reduce": params["reduce"], "method": res["method"],
        "k": res["n_clusters"], "how_k": how_k, "timings": steps, "map": map_used,
        "estimator": res.get("estimator", {}), "warnings": res.get("warnings", []),
        "seed": params.get("seed"), "within": params.get("within"),
        "exclude": params.get("exclude"),
    }


def _draw_figures(run: dict[str, Any], Z: np.ndarray, clusters: np.ndarray, sil: np.ndarray,
                  assets: Path, drawn: dict[str, str] | None = None) -> dict[str, str]:
    res = run["results"]
    figs = (dict(drawn) if drawn is not None
            else _figures.basic_figures(res, clusters, sil, PALETTE, assets))
    if res["method"] == "agglomerative":
        L, cut = _tree(run, Z)
        _figures.dendrogram(L, assets / "dendrogram.png", cut=cut)
        figs["dendrogram"] = "dendrogram.png"
    return figs


def _tree(run: dict[str, Any], Z: np.ndarray) -> tuple[np.ndarray, float | None]:
    res = run["results"]
    return tree_and_cut(Z, res.get("estimator", {}), res["n_clusters"],
                        run["params"].get("seed", 0))


def _cophenetic_table(run: dict[str, Any], Z: np.ndarray) -> list[dict[str, Any]] | None:
    """Cophenetic correlation of every linkage method (hierarchical runs only)."""
    if run["results"]["method"] != "agglomerative":
        return None
    return cophenetic_table(Z, run["results"].get("estimator", {}), run["params"].get("seed", 0))


def _retrieval(ws: Workspace) -> dict[str, Any] | None:
    """The latest retrieval evaluation, when one was run, with its PR curves."""
    done = [r for r in ws.runs("evaluate-retrieval") if r["status"] == "done"]
    if not done:
        return None
    r = done[-1]
    return {"run_id": r["id"], "features": r["params"].get("features"),
            "codes": r["results"] or {}}


def write_comparison(ws: Workspace, out: Path, run_a: int, run_b: int) -> dict[str, Any]:
    """Two cluster runs side by side: parameters, scores, sizes and how clusters map."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    out = _check_out(out, ws)
    runs = [ws.get_run(run_a, "cluster"), ws.get_run(run_b, "cluster")]
    ia, ca, _, _ = ws.assignments(run_a)
    ib, cb, _, _ = ws.assignments(run_b)
    common, pa, pb = np.intersect1d(ia, ib, return_indices=True)
    if not len(common):
        raise ConfigError(f"Runs {run_a} and {run_b} share no images; nothing to compare.")
    a, b = ca[pa], cb[pb]
    ua, ta = np.unique(a, return_inverse=True)
    ub, tb = np.unique(b, return_inverse=True)
    C = contingency_matrix(ta, tb)
    mapping = []
    for i, c in enumerate(ua):
        j = int(np.argmax(C[i]))
        mapping.append({"a": int(c), "b": int(ub[j]), "size": int(C[i].sum()),
                        "share": float(C[i, j] / max(C[i].sum(), 1))})
    has_labels = [any(lab is not None for lab in ws.assignments(r["id"])[2]) for r in runs]
    scores = [score_run(ws, r["id"]) if h else None for r, h in zip(runs, has_labels,
                                                                     strict=True)]
    _copy_assets(out)
    ctx = {
        "title": f"imgatlas: run {run_a} vs run {run_b}", "version": __version__,
        "runs": runs, "scores": scores, "n_common": int(len(common)),
        "agreement": {"ari": float(adjusted_rand_score(a, b)),
                      "nmi": float(normalized_mutual_info_score(a, b))},
        "rows": [int(c) for c in ua], "cols": [int(c) for c in ub], "matrix": C.tolist(),
        "row_max": [int(r.max()) for r in C], "mapping": mapping, "root": "",
        "home": (out / "index.html").exists(),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = out / f"compare-{run_a}-{run_b}.html"
    path.write_text(_env().get_template("compare.html.j2").render(**ctx), encoding="utf-8")
    return {"out": str(out), "index": str(path), "runs": [run_a, run_b],
            "n_common": int(len(common)), **ctx["agreement"]}

