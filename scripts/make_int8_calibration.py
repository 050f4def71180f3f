"""Write ``src/imgatlas/backbones/calibration/``: the images every int8 graph is calibrated
on, so that int8 features do not depend on the collection being embedded (an image gets the
same features in every workspace, and a classifier trained on one serves another).

They are the bundled CC0 sample (``samples/clothing``, 120 photos of 10 kinds of clothing),
squashed to 224 x 224 (EfficientNet-Lite0's input; Lite1/Lite2 resize them up) and stored
as JPEG quality 90 to keep the package small. benchmarks/bench_int8_fixed.py measured this
calibration against one on each collection's own images: cosine to fp32 within 0.001 on
every dev set, retrieval mAP unchanged.

    python scripts/make_int8_calibration.py [--sample samples/clothing]

Deterministic for a given Pillow version; the file names are the sources' sha256 prefixes.
``SHA256SUMS`` beside them (sha256sum's format) lists the set: imgatlas refuses a partial or
damaged set, naming the file, rather than quietly calibrating on what is left.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "imgatlas" / "backbones" / "calibration"
SIDE = 224


def write_manifest(folder: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
             for p in sorted(folder.glob("*.jpg"))]
    (folder / "SHA256SUMS").write_text("".join(lines), "ascii")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=ROOT / "samples" / "clothing")
    args = ap.parse_args()
    files = sorted(p for p in args.sample.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise SystemExit(f"no images under {args.sample}")
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.jpg"):
        old.unlink()
    for f in files:
        name = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        with Image.open(f) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im = im.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            im.save(OUT / f"{name}.jpg", quality=90)
    write_manifest(OUT)
    total = sum(p.stat().st_size for p in OUT.glob("*.jpg"))
    print(f"wrote {len(files)} images ({total / 1e6:.2f} MB) to {OUT}")


if __name__ == "__main__":
    main()
