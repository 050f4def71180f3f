"""Randomly initialised DINOv2, CLIP and SigLIP models written into a Hugging Face cache
(``models--ORG--NAME/snapshots/REV`` with ``refs/main``), exactly where transformers looks
for a downloaded model. No weights can be downloaded on imgatlas' own machines, so the
tests (``tiny``: hidden size 32, 2 layers, as transformers' own testers) and the benchmarks
(``real``: the published sizes, which cost what the real weights cost) run the whole
hub path on these. Needs transformers and PyTorch."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# preprocessor configs as the real repos have them (tiny models use a smaller side)
_PREPROCESS = {
    "dinov2": {"image_processor_type": "BitImageProcessor", "do_resize": True,
               "size": {"shortest_edge": 256}, "resample": 3, "do_center_crop": True,
               "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
               "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
               "do_convert_rgb": True},
    "clip": {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
             "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
             "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
             "rescale_factor": 1 / 255, "do_normalize": True,
             "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True},
    "siglip": {"image_processor_type": "SiglipImageProcessor", "do_resize": True,
               "size": {"height": 224, "width": 224}, "resample": 3, "do_rescale": True,
               "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3,
               "image_std": [0.5] * 3},
}

def _clip_b(patch: int) -> dict[str, Any]:
    """CLIP ViT-B/``patch``: the image tower ViT-B, the text tower 512 wide, 512-d."""
    return {"vision": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                       "intermediate_size": 3072, "image_size": 224, "patch_size": patch},
            "text": {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8,
                     "intermediate_size": 2048},
            "projection_dim": 512}


# the published architectures (what the benchmarks time)
REAL = {
    "dinov2-small": ("dinov2", {"hidden_size": 384, "num_hidden_layers": 12,
                                "num_attention_heads": 6, "intermediate_size": 1536,
                                "image_size": 518, "patch_size": 14}),
    "dinov2-base": ("dinov2", {"hidden_size": 768, "num_hidden_layers": 12,
                               "num_attention_heads": 12, "intermediate_size": 3072,
                               "image_size": 518, "patch_size": 14}),
    "clip-vit-b32": ("clip", _clip_b(32)),
    "clip-vit-b16": ("clip", _clip_b(16)),
    "siglip-base": ("siglip", {"vision": {"hidden_size": 768, "num_hidden_layers": 12,
                                          "num_attention_heads": 12,
                                          "intermediate_size": 3072, "image_size": 224,
                                          "patch_size": 16},
                               "text": {"hidden_size": 768, "num_hidden_layers": 12,
                                        "num_attention_heads": 12,
                                        "intermediate_size": 3072}}),
}
TINY_SIDE = 32
_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 37}


def write_fake_model(hub_cache: str | os.PathLike[str], repo: str, family: str, *,
                     size: str = "tiny", seed: int = 0,
                     preprocess: dict[str, Any] | None = None, tokenizer: Any = None) -> str:
    """Write a randomly initialised ``family`` model as ``repo`` into ``hub_cache``; returns
    its commit. ``size``: ``tiny`` or a key of :data:`REAL`; ``tokenizer``: a transformers
    tokenizer to ship instead of the family's small one."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    model, tokenizer = _build(family, size, tokenizer)
    kind = type(tokenizer).__name__ if tokenizer is not None else ""
    commit = hashlib.sha1(f"{repo}:{family}:{size}:{seed}:{kind}".encode()).hexdigest()
    root = Path(hub_cache) / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        pp = dict(preprocess or _PREPROCESS[family])
        if size == "tiny" and preprocess is None:
            pp = _tiny_preprocess(pp)
        Path(tmp, "preprocessor_config.json").write_text(json.dumps(pp, indent=1))
        if snap.exists():
            shutil.rmtree(snap)
        snap.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp, snap)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return commit


def _tiny_preprocess(pp: dict[str, Any]) -> dict[str, Any]:
    pp = json.loads(json.dumps(pp))
    if "shortest_edge" in pp["size"]:
        short = pp["size"]["shortest_edge"] * TINY_SIDE // 224
        pp["size"] = {"shortest_edge": short}
        pp["crop_size"] = {"height": TINY_SIDE, "width": TINY_SIDE}
    else:
        pp["size"] = {"height": TINY_SIDE, "width": TINY_SIDE}
    return pp


def _build(family: str, size: str, tokenizer: Any = None) -> tuple[Any, Any]:
    import transformers as tf

    if size == "tiny":
        vision = {**_TINY, "image_size": TINY_SIDE, "patch_size": 8}
        text = dict(_TINY)
        projection = 16
    else:
        fam, arch = REAL[size]
        if fam != family:
            raise ValueError(f"{size} is a {fam} model, not {family}")
        vision, text = arch.get("vision", arch), arch.get("text", {})
        projection = arch.get("projection_dim", 512)
    if family == "dinov2":
        if size == "tiny":
            vision = {**vision, "patch_size": 4}
        return tf.Dinov2Model(tf.Dinov2Config(**vision)).eval(), None
    tokenizer = tokenizer or _tokenizer(family)
    vocab = len(tokenizer)
    if family == "clip":
        cfg = tf.CLIPConfig(
            text_config={**text, "vocab_size": vocab, "max_position_embeddings": 77,
                         "bos_token_id": tokenizer.bos_token_id,
                         "eos_token_id": tokenizer.eos_token_id,
                         "pad_token_id": tokenizer.pad_token_id},
            vision_config=vision, projection_dim=projection)
        return tf.CLIPModel(cfg).eval(), tokenizer
    if family == "siglip":
        cfg = tf.SiglipConfig(
            text_config={**text, "vocab_size": vocab, "max_position_embeddings": 64,
                         "pad_token_id": tokenizer.pad_token_id,
                         "eos_token_id": tokenizer.eos_token_id},
            vision_config=vision)
        model = tf.SiglipModel(cfg).eval()
        import torch

        with torch.no_grad():  # SigLIP's published init: scale log(10), bias -10
            model.logit_scale.fill_(2.302585)
            model.logit_bias.fill_(-10.0)
        return model, tokenizer
    raise ValueError(f"unknown family {family!r}")


def _tokenizer(family: str) -> Any:
    """A small real tokenizer of the family's kind: CLIP's byte-level BPE with no merges,
    SigLIP's as a fast Unigram tokenizer with ``</s>`` closing each text (as siglip2's
    repos ship it, tokenizer.json)."""
    from transformers import CLIPTokenizer, PreTrainedTokenizerFast

    if True:
        if family == "clip":
            chars = _byte_chars()
            vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
            vocab["<|startoftext|>"] = len(vocab)
            vocab["<|endoftext|>"] = len(vocab)
            return CLIPTokenizer(vocab=vocab, merges=[])
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

        pieces = ["<pad>", "</s>", "<unk>"] + [f"▁{w}" for w in (
            "a", "photo", "of", "the", "dog", "cat", "red", "dress", "car", "tree")] + \
            list("abcdefghijklmnopqrstuvwxyz0123456789▁")
        unigram = models.Unigram([(p, -float(i % 7 + 1)) for i, p in enumerate(pieces)],
                                 unk_id=2, byte_fallback=False)
        tok = Tokenizer(unigram)
        tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", 1)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                       eos_token="</s>", unk_token="<unk>",
                                       model_max_length=64)


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (byte-level BPE's alphabet)."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out
