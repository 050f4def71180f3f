"""The report's model section: one page per trained model in the workspace (learning curves,
confusion matrix, per-class table, the most confident mistakes and the suspected label
errors as thumbnails)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from imgatlas.report import _figures
from imgatlas.report._thumbs import ThumbnailJob
from imgatlas.store import Workspace

SHOWN = 24  # mistakes / suspects shown per model


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def trained_models(ws: Workspace) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable model folder of the workspace, by name."""
    root = ws.path / "models"
    out = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / "model.json").is_file():
                continue
            try:
                out.append((folder, json.loads((folder / "model.json").read_text())))
            except (OSError, ValueError):
                continue
    return out


def write_model_pages(ws: Workspace, out: Path, assets: Path, env: Any, ctx: dict[str, Any],
                      place_thumbs: Any) -> list[dict[str, Any]]:
    """Write ``models/<name>.html`` for every model; return the index's cards."""
    models = trained_models(ws)
    if not models:
        return []
    rows = {r.id: r for r in ws.images(status=None)}
    wanted = {e["id"] for _, m in models
              for key in ("confident_mistakes", "suspected_label_errors")
              for e in m.get(key, [])[:SHOWN] if e["id"] in rows}
    thumbs = place_thumbs(ThumbnailJob(ws, [rows[i] for i in sorted(wanted)]).result(),
                          assets)
    (out / "models").mkdir(exist_ok=True)
    for old in (out / "models").glob("*.html"):
        old.unlink()
    cards = []
    tpl = env.get_template("model.html.j2")
    for folder, meta in models:
        slug = _slug(meta.get("name", folder.name))
        figs: dict[str, str | None] = {"curves": None, "confusion": None}
        epochs = _epochs(folder / "epochs.csv")
        if epochs:
            figs["curves"] = f"model-{slug}-curves.png"
            _figures.learning_curves(epochs, assets / figs["curves"])
        conf = (meta.get("metrics") or {}).get("confusion")
        if conf:
            figs["confusion"] = f"model-{slug}-confusion.png"
            _figures.confusion_matrix(conf["counts"], conf["classes"], assets / figs["confusion"])

        page = {"meta": meta, "figures": figs, "slug": slug,
                "mistakes": _cards(meta, "confident_mistakes", thumbs),
                "suspects": _cards(meta, "suspected_label_errors", thumbs)}
        html = tpl.render(**{**ctx, "root": "../", "model": page,
                             "title": f"model {meta.get('name', folder.name)}"})
        (out / "models" / f"{slug}.html").write_text(html, encoding="utf-8")
        m = meta.get("metrics") or {}
        cards.append({"name": meta.get("name", folder.name), "kind": meta.get("kind"),
                      "mode": meta.get("mode", meta.get("kind")),
                      "accuracy": m.get("accuracy"), "ece": m.get("ece"),
                      "classes": len(meta.get("classes", [])),
                      "page": f"models/{slug}.html"})
    return cards


def _cards(meta: dict[str, Any], key: str, thumbs: dict[int, str | None]
           ) -> list[dict[str, Any]]:
    return [{**e, "thumb": thumbs.get(e["id"]), "name": e["path"]}
            for e in meta.get(key, [])[:SHOWN]]


def _epochs(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        try:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        except (ValueError, TypeError):
            return []
