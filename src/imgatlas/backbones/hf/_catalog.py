"""Short names for the foundation models people ask for most, with what each costs and is
good for. Any other ``hf:ORG/NAME`` of a supported family works the same way.

Speeds are images/s through ONNX Runtime on 2 CPU cores (benchmarks/bench_foundation.py,
randomly initialised weights at the real sizes, which cost what the real ones cost);
the EfficientNet-Lite0 default measured in the same run is the yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("dinov2", "clip", "siglip")
# model_type in a repo's config.json -> the family that exports it
# (dinov2_with_registers is not: its position embeddings are resized with an antialiased
# bicubic that the ONNX exporter cannot write)
MODEL_TYPES = {"dinov2": "dinov2", "clip": "clip", "siglip": "siglip"}
TEXT_FAMILIES = ("clip", "siglip")


@dataclass(frozen=True)
class Entry:
    name: str
    repo: str
    family: str
    dim: int
    side: int
    params_m: int  # millions of parameters of what imgatlas runs (image tower + text tower)
    licence: str
    good_for: str


CATALOG = {e.name: e for e in [
    Entry("dinov2-small", "facebook/dinov2-small", "dinov2", 384, 224, 22, "Apache-2.0",
          "clustering, near-duplicates and search by image; the cheapest better eyes"),
    Entry("dinov2-base", "facebook/dinov2-base", "dinov2", 768, 224, 86, "Apache-2.0",
          "clustering and fine-grained search by image; no text"),
    Entry("clip-vit-b32", "openai/clip-vit-base-patch32", "clip", 512, 224, 151, "MIT",
          "search by words and open-vocabulary cluster names; the fastest text model"),
    Entry("clip-vit-b16", "openai/clip-vit-base-patch16", "clip", 512, 224, 150, "MIT",
          "search by words, finer detail than B/32 at about 4x its cost"),
    Entry("siglip-base", "google/siglip-base-patch16-224", "siglip", 768, 224, 203,
          "Apache-2.0", "search by words with calibrated (sigmoid) scores"),
    Entry("siglip2-base", "google/siglip2-base-patch16-224", "siglip", 768, 224, 375,
          "Apache-2.0", "search by words in many languages (Gemma tokenizer)"),
]}


def entry_for_repo(repo: str) -> Entry | None:
    return next((e for e in CATALOG.values() if e.repo == repo), None)
