"""train-sketch: an adapter from sketch-photo pairs in the Sketchy layout
(``DIR/photo/<class>/<id>.jpg``, ``DIR/sketch/<class>/<id>-<n>.png``), saved as a model
folder that ``search --sketch --adapter`` takes."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas import defaults
from imgatlas._progress import progress_bar
from imgatlas._text import printable
from imgatlas.errors import ConfigError
from imgatlas.sketch import _features as F
from imgatlas.sketch._stage import SKETCH_EXTENSIONS, _base_backbone
from imgatlas.store import Workspace

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def read_pairs(root: Path, classes: list[str] | None = None
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(photos, sketches)`` as (path, class) lists from a Sketchy-layout folder."""
    root = Path(root)
    if not (root / "photo").is_dir() or not (root / "sketch").is_dir():
        raise ConfigError(f"--pairs {printable(root)} needs photo/<class>/ and "
                          "sketch/<class>/ folders (the Sketchy layout).")

    def files(kind: str, exts: tuple[str, ...]) -> list[tuple[str, str]]:
        out = []
        for cls in sorted(p for p in (root / kind).iterdir() if p.is_dir()):
            if classes is not None and cls.name not in classes:
                continue
            out += [(str(f), cls.name) for f in sorted(cls.iterdir())
                    if f.suffix.lower() in exts]
        return out

    photos, sketches = files("photo", PHOTO_EXTENSIONS), files("sketch", SKETCH_EXTENSIONS)
    if not photos or not sketches:
        raise ConfigError(f"--pairs {printable(root)} holds no photo/sketch pairs.")
    return photos, sketches


def train_sketch_workspace(ws: Workspace, pairs: Path, *, name: str | None = None,
                           classes: list[str] | None = None, features: str | None = None,
                           seed: int = defaults.SEED, cache_dir: Path | None = None,
                           progress: bool = False) -> dict[str, Any]:
    from imgatlas.backbones import create_backbone
    from imgatlas.classify import write_model_folder
    from imgatlas.embed import Embedder
    from imgatlas.sketch._adapter import train_adapter

    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ConfigError(f"--name must be letters, digits, '.', '_' or '-' (at most 64). "
                          f"Got {name!r} instead.")
    photos, sketches = read_pairs(pairs, classes)
    base = _base_backbone(ws, features)
    params = {"pairs": printable(Path(pairs).resolve()), "classes": classes,
              "backbone": base, "name": name}
    with ws.recording("train-sketch", params, seed=seed) as run:
        t0 = time.perf_counter()
        name = name or f"sketch-adapter-r{run.id}"
        bb = create_backbone(base, cache_dir=cache_dir)
        bar = progress_bar(len(photos) + len(sketches), "sketch pairs: embed", "img",
                           progress)
        P = Embedder(bb).embed_files([p for p, _ in photos])  # the photos as photos
        bar.update(len(photos))
        sketch_emb = Embedder(bb)
        S = np.concatenate([F.sketch_features(sketch_emb, [s for s, _ in sketches[i:i + 64]],
                                              tta=False)
                            for i in range(0, len(sketches), 64)])
        bar.update(len(sketches))
        bar.close()
        s_cls = np.array([c for _, c in sketches])
        p_cls = np.array([c for _, c in photos])
        tbar = progress_bar(0, "train sketch adapter", "epoch", progress)

        def on_epoch(row: dict[str, float]) -> None:
            tbar.set_postfix(loss=f"{row['loss']:.3f}", val_map=f"{row['val_map']:.3f}")
            tbar.update(1)

        weights, history = train_adapter(S, s_cls, P, p_cls, seed=seed, progress=on_epoch)
        tbar.close()
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes()
                                         for w in weights.values())).hexdigest()[:16]
        best = max(history, key=lambda r: r["val_map"])
        meta = {"kind": "sketch-adapter", "name": name, "identity": digest,
                "backbone": base, "classes": sorted(set(s_cls.tolist())),
                "n_sketches": len(sketches),
                "n_photos": len(photos), "seed": seed,
                "val_map_before": history[0]["val_map"], "val_map_after": best["val_map"],
                "best_epoch": best["epoch"], "epochs_run": len(history) - 1,
                "seconds": round(time.perf_counter() - t0, 1), "run_id": run.id,
                "note": "validation: the sketches of a fifth of the training classes, held "
                        "out, against those classes' photos"}
        folder = write_model_folder(ws.path / "models" / name, meta, epochs=history,
                                    arrays={"adapter.npz": weights})
        run.results = {**meta, "model": str(folder)}
    return run.results
