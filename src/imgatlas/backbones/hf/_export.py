"""First use of a Hugging Face model: load it through transformers (the user's cache,
HF_HOME, HF_HUB_OFFLINE and tokens behave as everywhere else), export the image tower (and
for CLIP/SigLIP the text tower) to ONNX, check each graph against PyTorch, quantise the
image tower to int8 and keep that graph only when its features agree with fp32's on the
images shipped for calibration. Everything lands in one folder of imgatlas' model cache;
later runs read it with ONNX Runtime and ``tokenizers`` alone.

The only module of imgatlas that imports transformers.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from imgatlas._optional import require
from imgatlas.backbones.hf._catalog import FAMILIES, MODEL_TYPES, TEXT_FAMILIES
from imgatlas.backbones.hf._hub import ModelName, export_root, load_error, write_ref
from imgatlas.backbones.hf._preprocess import decode_settings
from imgatlas.errors import ExportMismatch, UnsupportedModel

EXPORT_VERSION = 1
# ONNX against PyTorch: the largest difference, as a share of the largest feature value
ONNX_TOLERANCE = 1e-3
# int8 kept when its features of the calibration images agree with fp32's this well (the
# default's int8 measures 0.995 mean on photos: benchmarks/bench_int8_default.py)
INT8_MEAN_COSINE = 0.99
INT8_MIN_COSINE = 0.97
GATE_IMAGES = 64  # of the shipped calibration images: the gate's cost stays seconds
# strings the exported tokenizer must split exactly as transformers does
TOKENIZER_PROBES = ("a photo of a dog.", "A Red Dress!", "two cats, on a sofa",
                    "x", "Ünïcode café 東京", " ".join(["long"] * 120))


def export_model(name: ModelName, cache_dir: str | os.PathLike[str] | None,
                 say: Any = None) -> Path:
    """Export ``name`` into imgatlas' model cache; returns the export folder."""
    say = say or _say
    what = f"The first use of {name.display}"
    require("transformers", "foundation", what)
    require("torch", "foundation", what)
    import torch
    import transformers
    from transformers.utils import cached_file

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    kw = {"revision": name.revision}
    try:
        with _quiet():
            config = transformers.AutoConfig.from_pretrained(name.repo, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise _config_error(e, name) from None
    family = MODEL_TYPES.get(getattr(config, "model_type", ""))
    if getattr(config, "model_type", "") == "siglip2":
        raise UnsupportedModel(
            f"{name.display} is a SigLIP 2 NaFlex model (variable resolution), which imgatlas "
            "does not run yet; the fixed-resolution SigLIP 2 checkpoints "
            "(hf:google/siglip2-base-patch16-224) work.")
    if family is None:
        raise UnsupportedModel(
            f"{name.display} is a {getattr(config, 'model_type', 'unknown')!r} model; imgatlas "
            f"runs the {', '.join(FAMILIES)} families (hf:facebook/dinov2-small, "
            "hf:openai/clip-vit-base-patch32, hf:google/siglip-base-patch16-224).")
    try:
        with _quiet():
            pp_file = cached_file(name.repo, "preprocessor_config.json", **kw)
            model = transformers.AutoModel.from_pretrained(
                name.repo, attn_implementation="eager", **kw).eval()
            tokenizer = (transformers.AutoTokenizer.from_pretrained(name.repo, **kw)
                         if family in TEXT_FAMILIES else None)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(e, name) from None
    if pp_file is None:
        raise UnsupportedModel(f"{name.display} has no preprocessor_config.json.")
    commit = _commit_of(Path(pp_file), config)
    settings = decode_settings(json.loads(Path(pp_file).read_text("utf-8")), name.repo)
    say(f"exporting {name.display} ({family}) to ONNX, once")

    root = export_root(name, cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=root, prefix=".export-"))
    try:
        spec: dict[str, Any] = {
            "export_version": EXPORT_VERSION, "repo": name.repo, "revision": name.revision,
            "commit": commit, "family": family, "model_type": config.model_type,
            "transformers": transformers.__version__, "decode": settings,
        }
        spec["image"] = _export_image(model, family, settings, out, name)
        spec["dim"] = spec["image"].pop("dim")
        if tokenizer is not None:
            spec["text"] = _export_text(model, tokenizer, family, out, name)
        (out / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True), "utf-8")
        final = root / commit
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)  # the export appears whole, or not at all
    finally:
        shutil.rmtree(out, ignore_errors=True)
    write_ref(name, cache_dir, commit)
    if spec["image"]["int8"] is None:
        a = spec["image"]["int8_agreement"]
        say(f"{name.display} at int8 gave features at cosine {a['mean']:.3f} (lowest "
            f"{a['min']:.3f}) to fp32's on the calibration images; it runs at fp32")
    return final


def _export_image(model: Any, family: str, settings: dict[str, Any], out: Path,
                  name: ModelName) -> dict[str, Any]:
    import torch

    from imgatlas.backbones._export import export_onnx, pixel_input_wrapper

    def forward(net: Any, x: Any) -> Any:
        if family == "dinov2":  # the layer-normed CLS token: DINOv2's image embedding
            return net(pixel_values=x).pooler_output
        y = net.get_image_features(pixel_values=x)
        return getattr(y, "pooler_output", y)

    wrapped = pixel_input_wrapper(model, forward, settings["mean"], settings["std"])
    pixels = _calibration_pixels(settings)
    example = torch.from_numpy(pixels[:2])
    fp32 = out / "image.onnx"
    export_onnx(wrapped, example, fp32, ["features"])
    probe = pixels[:4]
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(probe)).numpy()
    got = _run(fp32, {"pixels": probe})
    diff = _check(ref, got, name, "image")
    int8 = out / "image-int8.onnx"
    _quantize(fp32, int8)
    gate = pixels[:GATE_IMAGES]
    a, b = _run(fp32, {"pixels": gate}), _run(int8, {"pixels": gate})
    cos = np.sum(_unit(a) * _unit(b), axis=1)
    agreement = {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5),
                 "images": len(gate)}
    kept = agreement["mean"] >= INT8_MEAN_COSINE and agreement["min"] >= INT8_MIN_COSINE
    if not kept:
        int8.unlink()
    return {"fp32": fp32.name, "int8": int8.name if kept else None, "dim": int(ref.shape[1]),
            "int8_agreement": agreement, "onnx_vs_torch": diff,
            "int8_recipe": "dynamic QInt8 MatMul weights"}


def _export_text(model: Any, tokenizer: Any, family: str, out: Path,
                 name: ModelName) -> dict[str, Any]:
    import torch

    tok_json = _tokenizer_json(tokenizer)
    (out / "tokenizer.json").write_text(tok_json, "utf-8")
    max_length = int(min(getattr(tokenizer, "model_max_length", 10**6) or 10**6,
                         model.config.text_config.max_position_embeddings))
    siglip = family == "siglip"
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id or 0
    text = {"tokenizer": "tokenizer.json", "max_length": max_length,
            "pad_to_max_length": siglip, "pad_id": int(pad_id),
            "pad_token": str(tokenizer.pad_token or tokenizer.eos_token or ""),
            "attention_mask": not siglip,
            "lowercase": bool(siglip and getattr(tokenizer, "do_lower_case", False)),
            "strip_punctuation": bool(siglip and hasattr(tokenizer, "canonicalize_text")),
            "logit_scale": float(model.logit_scale.exp().item()),
            "logit_bias": (float(model.logit_bias.item())
                           if getattr(model, "logit_bias", None) is not None else None),
            "scores": "sigmoid" if siglip else "softmax"}
    from imgatlas.backbones.hf._text import TextTokenizer

    mine = TextTokenizer(tok_json, text)
    theirs = tokenizer(list(TOKENIZER_PROBES), truncation=True, max_length=max_length,
                       padding="max_length" if siglip else True)
    ids, mask = mine(list(TOKENIZER_PROBES))
    if ids.tolist() != [list(r) for r in theirs["input_ids"]]:
        raise ExportMismatch(
            f"The tokenizer of {name.display} cannot be reproduced outside transformers "
            "(token ids differ); report this model to imgatlas.")

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            y = self.net.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            return getattr(y, "pooler_output", y)

    module = Text().eval()
    names = ["input_ids", "attention_mask"] if text["attention_mask"] else ["input_ids"]
    args = (torch.from_numpy(ids[:2]),) + ((torch.from_numpy(mask[:2]),)
                                           if text["attention_mask"] else ())
    path = out / "text.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17,
                          input_names=names, output_names=["features"],
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names},
                                        "features": {0: "batch"}})
        feeds = {"input_ids": ids, **({"attention_mask": mask} if text["attention_mask"]
                                      else {})}
        ref = module(*(torch.from_numpy(feeds[n]) for n in names)).numpy()
    text["onnx_vs_torch"] = _check(ref, _run(path, feeds), name, "text")
    text["graph"] = path.name
    return text


def _tokenizer_json(tokenizer: Any) -> str:
    """The tokenizer as a ``tokenizers`` JSON: its own when it is a fast one, else converted
    from the SentencePiece model (SigLIP), with SigLIP's lower-casing and punctuation
    stripping done by :class:`~imgatlas.backbones.hf._text.TextTokenizer`."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer",
                                                                     None)
    if backend is not None and hasattr(backend, "to_str"):
        return backend.to_str()
    try:
        from tokenizers import processors
        from transformers.convert_slow_tokenizer import SpmConverter

        fast = SpmConverter(tokenizer).converted()
        eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
        ends = tokenizer("x")["input_ids"]
        if eos is not None and ends and ends[-1] == eos_id and fast.encode("x").ids[-1:] != [
                eos_id]:  # SigLIP's slow tokenizer closes every text with </s>
            fast.post_processor = processors.TemplateProcessing(
                single=f"$A {eos}", special_tokens=[(eos, eos_id)])
        return fast.to_str()
    except Exception as e:  # the converters raise whatever their parsers raise
        raise UnsupportedModel(f"The tokenizer of {type(tokenizer).__name__} cannot be "
                               f"converted for use without transformers ({e}).") from None


def _quantize(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # MatMul weights only: the transformer's cost; the patch convolution and the
            # normalisations stay float (dynamic ConvInteger is slower than float here)
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=False)
    finally:
        logging.disable(logging.NOTSET)


def _check(ref: np.ndarray, got: np.ndarray, name: ModelName, what: str) -> float:
    scale = max(float(np.abs(ref).max()), 1e-6)
    diff = float(np.abs(ref - got).max()) / scale
    if not np.isfinite(diff) or diff > ONNX_TOLERANCE:
        raise ExportMismatch(
            f"The ONNX export of {name.display}'s {what} tower disagrees with PyTorch (largest "
            f"difference {diff:.2g} of the feature scale, tolerance {ONNX_TOLERANCE:g}); "
            "try another revision or report it to imgatlas.")
    return round(diff, 8)


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    outs = []
    n = len(next(iter(feeds.values())))
    for i in range(0, n, 16):
        outs.append(sess.run(["features"], {k: v[i:i + 16] for k, v in feeds.items()})[0])
    return np.concatenate(outs).astype(np.float32)


def _calibration_pixels(settings: dict[str, Any]) -> np.ndarray:
    from imgatlas.backbones._quantize import _calibration_files
    from imgatlas.decode import decode_rgb

    size = tuple(settings["input_size"])
    return np.stack([decode_rgb(f, size, resize=settings["resize"],
                                interpolation=settings["interpolation"])
                     for f in _calibration_files()[:GATE_IMAGES]])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _commit_of(path: Path, config: Any) -> str:
    commit = getattr(config, "_commit_hash", None)
    if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit):
        return commit
    if path.parent.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}",
                                                                  path.parent.name):
        return path.parent.name
    return "local"


def _config_error(e: BaseException, name: ModelName) -> Exception:
    text = str(e)
    if "model_type" in text or "Unrecognized model" in text:
        return UnsupportedModel(f"{name.display} is not a model transformers recognises; "
                                f"imgatlas runs the {', '.join(FAMILIES)} families.")
    return load_error(e, name)


@contextlib.contextmanager
def _quiet() -> Any:
    """transformers reports fallbacks (no torchvision, a slow tokenizer) on stderr and
    through warnings; imgatlas says in one line what matters."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _say(text: str) -> None:
    print(f"imgatlas: {text}", file=sys.stderr)
