"""Write randomly initialised foundation models into a Hugging Face cache under their real
repo names, to try the Hugging Face path where no weights can be downloaded (as the tests
and benchmarks do).

    python scripts/make_fake_hf_cache.py HF_HOME [--real dinov2-small] [--tiny clip,siglip]
    HF_HOME=HF_HOME HF_HUB_OFFLINE=1 imgatlas run PHOTOS -w W --backbone hf:facebook/dinov2-small

``--real``: short names written at their published sizes (``dinov2-small``, ``dinov2-base``,
``clip-vit-b32``, ``clip-vit-b16``, ``siglip-base``); ``--tiny``: families written as tiny
models (hidden size 32) under the repo of their first short name. Needs the foundation extra.
The features of random weights mean nothing: this is for trying the mechanics, not quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imgatlas.backbones.hf import CATALOG
from imgatlas.backbones.hf._fake import REAL, write_fake_model

TINY_REPOS = {"dinov2": "facebook/dinov2-small", "clip": "openai/clip-vit-base-patch32",
              "siglip": "google/siglip-base-patch16-224"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_home", type=Path)
    ap.add_argument("--real", default="dinov2-small")
    ap.add_argument("--tiny", default="clip")
    args = ap.parse_args()
    hub = args.hf_home / "hub"
    for name in filter(None, args.real.split(",")):
        family = REAL[name][0]
        commit = write_fake_model(hub, CATALOG[name].repo, family, size=name)
        print(f"{CATALOG[name].repo} ({name}, real size, random) -> {commit[:12]}")
    for family in filter(None, args.tiny.split(",")):
        commit = write_fake_model(hub, TINY_REPOS[family], family)
        print(f"{TINY_REPOS[family]} (tiny {family}, random) -> {commit[:12]}")
    print(f"HF_HOME={args.hf_home} HF_HUB_OFFLINE=1 imgatlas run PHOTOS -w W --backbone "
          "hf:facebook/dinov2-small")


if __name__ == "__main__":
    main()
