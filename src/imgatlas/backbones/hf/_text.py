"""The text tower of a CLIP or SigLIP export: words -> vectors in the images' feature space,
with the light ``tokenizers`` library and ONNX Runtime (no transformers, no PyTorch).

A query is embedded through prompt templates ("a photo of a {}.") and the templates'
vectors averaged, as CLIP's zero-shot classifier does; SigLIP's scores are its own
calibrated sigmoid, ``sigmoid(scale * cosine + bias)``; CLIP's are cosines (turned into a
softmax over the candidates where names are chosen).
"""

from __future__ import annotations

import re
import string
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._optional import require

# CLIP's own ensemble, shortened: templates that suit a collection of photos
TEMPLATES = ("a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.",
             "a bright photo of a {}.", "a photo of many {}.")
_PUNCT = str.maketrans("", "", string.punctuation)


class TextTokenizer:
    """Token ids as transformers' tokenizer gives them (checked at export on probe strings):
    ``(ids, attention_mask)`` int64 arrays, padded as the model was trained."""

    def __init__(self, tokenizer_json: str, spec: dict[str, Any]) -> None:
        tokenizers = require("tokenizers", "foundation", "Text search")
        self.spec = spec
        tok = tokenizers.Tokenizer.from_str(tokenizer_json)
        tok.no_padding()
        tok.enable_truncation(int(spec["max_length"]))
        self._tok = tok

    def canonical(self, text: str) -> str:
        if self.spec.get("lowercase"):
            text = text.lower()
        if self.spec.get("strip_punctuation"):
            text = re.sub(r"\s+", " ", text.translate(_PUNCT)).strip()
        return text

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encoded = self._tok.encode_batch([self.canonical(t) for t in texts])
        rows = [e.ids for e in encoded]
        width = (int(self.spec["max_length"]) if self.spec.get("pad_to_max_length")
                 else max(len(r) for r in rows))
        ids = np.full((len(rows), width), int(self.spec["pad_id"]), np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return ids, mask


class TextTower:
    """Words -> L2-normalised vectors comparable with the image tower's features."""

    def __init__(self, folder: Path, spec: dict[str, Any], threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.spec = spec
        self.threads = threads

    @cached_property
    def tokenizer(self) -> TextTokenizer:
        return TextTokenizer((self.folder / self.spec["tokenizer"]).read_text("utf-8"),
                             self.spec)

    @cached_property
    def _session(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self.threads:
            so.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(self.folder / self.spec["graph"]), so,
                                    providers=["CPUExecutionProvider"])

    @property
    def sigmoid(self) -> bool:
        return self.spec.get("scores") == "sigmoid"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(n, dim)`` unit vectors of ``texts`` as given (no template)."""
        out = []
        for i in range(0, len(texts), batch_size):
            ids, mask = self.tokenizer(texts[i:i + batch_size])
            feeds = {"input_ids": ids}
            if self.spec.get("attention_mask"):
                feeds["attention_mask"] = mask
            out.append(self._session.run(["features"], feeds)[0])
        X = np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
        return _unit(X)

    def embed_queries(self, queries: list[str], templates: tuple[str, ...] = TEMPLATES
                      ) -> np.ndarray:
        """One unit vector per query: the mean of its templated prompts' vectors. A query
        that already reads as a sentence (several words) is also taken as it is."""
        prompts, owner = [], []
        for q, text in enumerate(queries):
            forms = [t.format(text) for t in templates]
            if len(text.split()) > 2:
                forms.append(text)
            prompts += forms
            owner += [q] * len(forms)
        V = self.encode(prompts)
        owner_a = np.asarray(owner)
        return _unit(np.stack([V[owner_a == q].mean(axis=0) for q in range(len(queries))]))

    def scores(self, cosine: np.ndarray) -> np.ndarray:
        """The model's own score of image-text pairs from their cosines: SigLIP's sigmoid
        probability; CLIP's cosine as it is (a softmax needs candidates: :meth:`softmax`)."""
        if not self.sigmoid:
            return cosine
        z = self.spec["logit_scale"] * cosine + (self.spec.get("logit_bias") or 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def softmax(self, cosine: np.ndarray) -> np.ndarray:
        """CLIP's probabilities over candidates (the last axis) from cosines."""
        z = self.spec["logit_scale"] * cosine
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
