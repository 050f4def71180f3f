"""Foundation backbones from the Hugging Face hub, on tiny randomly initialised DINOv2, CLIP
and SigLIP models written into the session's HF cache (tests/conftest.py: offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HF_MODELS, ROOT
from imgatlas.backbones.hf import CATALOG, parse_name
from imgatlas.backbones.hf._hub import hf_hub_cache, known_commit, load_error
from imgatlas.backbones.hf._preprocess import decode_settings
from imgatlas.errors import ConfigError, MissingWeights, UnsupportedModel

SAMPLES = sorted((ROOT / "samples" / "clothing").glob("*/*.jpg"))


# -- names and caches (no transformers needed) --------------------------------------------------
@pytest.mark.parametrize("name, repo, rev", [
    ("hf:facebook/dinov2-small", "facebook/dinov2-small", "main"),
    ("hf:openai/clip-vit-base-patch32@v1.0", "openai/clip-vit-base-patch32", "v1.0"),
    ("hf:a/b@" + "0" * 40, "a/b", "0" * 40),
])
def test_names_parse(name, repo, rev):
    m = parse_name(name)
    assert (m.repo, m.revision) == (repo, rev)
    assert m.folder == repo.replace("/", "--")


@pytest.mark.parametrize("bad", ["hf:bad", "hf:/x", "hf:a/b/c", "hf:../x", "hf:a/b@",
                                 "hf:a/b@$x", "hf:"])
def test_malformed_names_are_refused(bad):
    if bad.endswith("@"):  # an empty revision means main
        assert parse_name(bad).revision == "main"
        return
    with pytest.raises(ConfigError, match="hf:ORG/NAME"):
        parse_name(bad)


def test_hub_cache_follows_the_hugging_face_variables(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hf_hub_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert hf_hub_cache() == tmp_path / "x" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "h"))
    assert hf_hub_cache() == tmp_path / "h" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hf_hub_cache() == tmp_path / "c"


def test_the_commit_comes_from_the_user_cache_then_imgatlas(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = parse_name("hf:org/model")
    assert known_commit(m, tmp_path / "ia") is None
    ours = tmp_path / "ia" / "backbones" / "hf" / "org--model" / "refs"
    ours.mkdir(parents=True)
    (ours / "main").write_text("a" * 40)
    assert known_commit(m, tmp_path / "ia") == "a" * 40
    theirs = tmp_path / "hub" / "models--org--model" / "refs"
    theirs.mkdir(parents=True)
    (theirs / "main").write_text("b" * 40)
    assert known_commit(m, tmp_path / "ia") == "b" * 40  # updated there: exported again


@pytest.mark.parametrize("text, needle", [
    ("You are trying to access a gated repo. Make sure to have access", "gated model"),
    ("x is not a local folder and is not a valid model identifier listed", "No model"),
    ("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find "
     "them in the cached files", "not in the Hugging Face cache"),
])
def test_hub_failures_become_one_line_with_a_remedy(text, needle):
    e = load_error(OSError(text), parse_name("hf:org/model"))
    assert isinstance(e, MissingWeights)
    assert needle in str(e) and "\n" not in str(e)


def test_preprocessor_configs_become_decode_settings():
    from imgatlas.backbones.hf._fake import _PREPROCESS

    d = decode_settings(_PREPROCESS["dinov2"], "r")
    assert d["input_size"] == (224, 224) and d["resize"] == "center_crop:256"
    assert d["interpolation"] == "pil-bicubic"
    assert np.allclose(d["mean"], [123.675, 116.28, 103.53])
    assert decode_settings(_PREPROCESS["clip"], "r")["resize"] == "center_crop"
    s = decode_settings(_PREPROCESS["siglip"], "r")
    assert s["resize"] == "squash" and s["mean"] == (127.5,) * 3 and s["std"] == (127.5,) * 3
    with pytest.raises(UnsupportedModel, match="variable input size"):
        decode_settings({"size": {"shortest_edge": 224}, "do_center_crop": False}, "r")


def test_short_names_are_listed_with_licence_and_cost():
    from imgatlas import api

    rows = {r["name"]: r for r in api.backbones()}
    for name in ("dinov2-small", "dinov2-base", "clip-vit-b32", "clip-vit-b16", "siglip-base"):
        assert name in rows and rows[name]["licence"] and rows[name]["params_m"] > 0
        assert rows[name]["dim"] == CATALOG[name].dim
    assert rows["clip-vit-b32"]["text"] and not rows["dinov2-small"]["text"]


# -- the preprocessing against transformers' own image processors ------------------------------
@pytest.mark.parametrize("family", ["dinov2", "clip", "siglip"])
def test_decode_matches_the_hugging_face_image_processor(family):
    transformers = pytest.importorskip("transformers")
    from PIL import Image, ImageOps

    from imgatlas.backbones.hf._fake import _PREPROCESS
    from imgatlas.decode import decode_rgb

    cls = {"dinov2": "BitImageProcessorPil", "clip": "CLIPImageProcessorPil",
           "siglip": "SiglipImageProcessorPil"}[family]
    pp = _PREPROCESS[family]
    proc = getattr(transformers, cls)(**{k: v for k, v in pp.items()
                                        if k != "image_processor_type"})
    s = decode_settings(pp, "r")
    files = SAMPLES[::15]
    imagenette = ROOT.parent / "shared" / "data" / "imagenette"
    # larger photos too, where JPEG draft decoding comes in (when the dev data is here)
    files += sorted(imagenette.glob("*/*.JPEG"))[:2] + sorted(imagenette.glob("*/*.jpg"))[:2]
    for f in files:
        with Image.open(f) as im:
            ref = proc(ImageOps.exif_transpose(im).convert("RGB"),
                       return_tensors="np")["pixel_values"][0]
        px = decode_rgb(f, s["input_size"], resize=s["resize"],
                        interpolation=s["interpolation"]).astype(np.float32)
        mine = ((px - np.array(s["mean"])) / np.array(s["std"])).transpose(2, 0, 1)
        assert mine.shape == ref.shape
        # the same pixels up to JPEG's DCT-domain downscaling of large photos
        assert np.abs(mine - ref).mean() < 0.03, f
        assert np.corrcoef(mine.ravel(), ref.ravel())[0, 1] > 0.995


# -- export, agreement, int8 -------------------------------------------------------------------
@pytest.fixture()
def hf_cache(tmp_path, hf_hub):
    """An empty imgatlas model cache of this test (exports are made anew in it)."""
    return tmp_path / "imgatlas-cache"


def test_dinov2_exports_once_and_matches_pytorch(hf_cache, hf_hub):
    import torch
    import transformers

    from imgatlas.backbones import create_backbone
    from imgatlas.embed import Embedder

    said = []
    from imgatlas.backbones.hf import hf_backbone

    bb = hf_backbone("hf:facebook/dinov2-small", hf_cache, say=said.append)
    assert bb.cfg.dim == 32 and bb.cfg.resize == "center_crop:36"
    assert said and "exporting" in said[0]
    folder = bb.onnx_path().parent
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["image"]["onnx_vs_torch"] <= 1e-3
    assert (folder.parent / "refs" / "main").read_text().strip() == folder.name
    # the ONNX features are the model's pooled CLS on the same pixels
    files = SAMPLES[:4]
    X = Embedder(bb).embed_files(files)
    model = transformers.AutoModel.from_pretrained(HF_MODELS["dinov2"]).eval()
    pix = np.stack([Embedder(bb).decode(f) for f in files]).astype(np.float32)
    x = (pix - np.array(bb.cfg.mean, np.float32)) / np.array(bb.cfg.std, np.float32)
    with torch.no_grad():
        ref = model(pixel_values=torch.from_numpy(x.transpose(0, 3, 1, 2))).pooler_output
    assert np.abs(ref.numpy() - X).max() < 1e-4
    # reopened from the cache: nothing exported again
    said.clear()
    again = create_backbone("dinov2-small", cache_dir=hf_cache)
    assert not said and again.identity() == bb.identity()


def test_int8_is_kept_only_when_it_agrees(hf_cache, monkeypatch):
    from imgatlas.backbones.hf import _export, hf_backbone

    bb = hf_backbone("hf:facebook/dinov2-small", hf_cache, say=lambda s: None)
    spec = json.loads((bb.onnx_path().parent / "spec.json").read_text())
    a = spec["image"]["int8_agreement"]
    assert (spec["image"]["int8"] is not None) == (a["mean"] >= _export.INT8_MEAN_COSINE
                                                  and a["min"] >= _export.INT8_MIN_COSINE)
    shutil.rmtree(hf_cache)
    monkeypatch.setattr(_export, "INT8_MEAN_COSINE", 1.01)  # nothing can pass
    said = []
    bb = hf_backbone("hf:facebook/dinov2-small", hf_cache, say=said.append)
    assert bb.default_precision == "fp32"
    assert sum("runs at fp32" in s for s in said) == 1
    assert not list(bb.onnx_path().parent.glob("*int8*"))
    with pytest.raises(ConfigError, match="no int8 graph"):
        bb.quantized()


def test_an_export_that_disagrees_with_pytorch_stops(hf_cache, monkeypatch):
    from imgatlas.backbones.hf import _export, hf_backbone
    from imgatlas.errors import ExportMismatch

    monkeypatch.setattr(_export, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(ExportMismatch, match="disagrees with PyTorch"):
        hf_backbone("hf:facebook/dinov2-small", hf_cache, say=lambda s: None)
    root = hf_cache / "backbones" / "hf" / "facebook--dinov2-small"
    assert not [p for p in root.iterdir() if p.name != "refs"] if root.exists() else True


def test_a_tokenizer_that_cannot_be_reproduced_stops(hf_cache, monkeypatch):
    from imgatlas.backbones.hf import _text, hf_backbone
    from imgatlas.errors import ExportMismatch

    monkeypatch.setattr(_text.TextTokenizer, "canonical", lambda self, t: t.upper() + " x")
    with pytest.raises(ExportMismatch, match="tokenizer"):
        hf_backbone("hf:openai/clip-vit-base-patch32", hf_cache, say=lambda s: None)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_text_tower_matches_pytorch(hf_cache, family):
    import torch
    import transformers

    from imgatlas.backbones.hf import hf_backbone

    bb = hf_backbone("hf:" + HF_MODELS[family], hf_cache, say=lambda s: None)
    tower = bb.text_tower()
    texts = ["a photo of a dog.", "Red dress!"]
    mine = tower.encode(texts)
    model = transformers.AutoModel.from_pretrained(HF_MODELS[family]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(HF_MODELS[family])
    enc = tok(texts, padding="max_length" if family == "siglip" else True, return_tensors="pt",
              max_length=64 if family == "siglip" else None)
    with torch.no_grad():
        y = model.get_text_features(**({"input_ids": enc["input_ids"]} if family == "siglip"
                                       else dict(enc)))
    ref = getattr(y, "pooler_output", y).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(ref - mine).max() < 1e-4
    if family == "siglip":  # its own calibrated scores
        s = tower.scores(np.array([-1.0, 0.0, 1.0]))
        assert np.all((s > 0) & (s < 1)) and np.all(np.diff(s) > 0)


def test_siglip_with_a_sentencepiece_tokenizer(tmp_path, hf_hub):
    """SigLIP v1 repos ship only spiece.model: converted for the tokenizers library, with
    SigLIP's lower-casing, punctuation stripping and closing </s> (checked at export)."""
    spm = pytest.importorskip("sentencepiece")
    import transformers

    from imgatlas.backbones.hf import hf_backbone
    from imgatlas.backbones.hf._fake import write_fake_model

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a photo of a dog\na red dress on a chair\ntwo cats on a sofa\n" * 40)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "spiece"), vocab_size=24,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
        eos_piece="</s>", unk_piece="<unk>", add_dummy_prefix=False, minloglevel=2)
    tok = transformers.SiglipTokenizer(vocab_file=str(tmp_path / "spiece.model"),
                                       model_max_length=64)
    write_fake_model(hf_hub, "acme/siglip-spm", "siglip", tokenizer=tok)
    bb = hf_backbone("hf:acme/siglip-spm", tmp_path / "cache", say=lambda s: None)
    mine, _ = bb.text_tower().tokenizer(["A Red dog!", "x"])
    theirs = tok(["A Red dog!", "x"], padding="max_length", max_length=64)["input_ids"]
    assert mine.tolist() == theirs


def test_an_unsupported_architecture_names_those_that_are(hf_cache, hf_hub):
    from imgatlas.backbones.hf import hf_backbone

    snap = hf_hub / "models--acme--bert-tiny" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True, exist_ok=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    (snap.parent.parent / "refs").mkdir(exist_ok=True)
    (snap.parent.parent / "refs" / "main").write_text("c" * 40)
    with pytest.raises(UnsupportedModel, match="dinov2, clip, siglip"):
        hf_backbone("hf:acme/bert-tiny", hf_cache)


# -- the whole tool on foundation features ----------------------------------------------------
def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from imgatlas.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str, most: int = 1) -> None:
    assert code != 0 and "Traceback" not in err
    assert 1 <= len(err.strip().splitlines()) <= most, err


@pytest.fixture()
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    for f in SAMPLES[::4]:
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / f.parent.name / f.name)
    return root


def test_run_cluster_search_and_train_on_dinov2(capsys, photos, tmp_path, hf_cache,
                                                monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(hf_cache))
    ws = str(tmp_path / "ws")
    code, out, err = cli(capsys, "run", str(photos), "-w", ws, "--labels-from-folders",
                         "--backbone", "hf:facebook/dinov2-small", "--k", "auto", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["cluster"]["n_clusters"] >= 2
    from imgatlas import api

    stores = api.status(ws)["stores"]
    assert [s["dim"] for s in stores] == [32]
    assert stores[0]["backbone"] == "hf:facebook/dinov2-small"
    code, out, err = cli(capsys, "index", "-w", ws)
    assert code == 0, err
    code, out, err = cli(capsys, "search", "-w", ws, str(SAMPLES[0]), "--k", "3", "--json")
    assert code == 0, err
    assert len(json.loads(out)[0]["results"]) == 3
    code, out, err = cli(capsys, "index", "-w", ws, "--sketch")
    assert code == 0, err
    code, out, err = cli(capsys, "search", "-w", ws, "--sketch", str(SAMPLES[2]), "--json")
    assert code == 0, err
    code, out, err = cli(capsys, "inspect", "-w", ws, "--json")
    assert code == 0, err
    code, out, err = cli(capsys, "suggest-labels", "-w", ws, "--json")
    assert code == 0, err
    code, out, err = cli(capsys, "train", "-w", ws, "--json")
    assert code == 0, err
    model = json.loads(out)["model"]
    code, out, err = cli(capsys, "predict", "--model", model, str(SAMPLES[1]), "--json")
    assert code == 0, err
    # no text tower, no ImageNet head: words are refused in one line, with the remedy
    code, _, err = cli(capsys, "search", "-w", ws, "--text", "a dog")
    one_line(code, err)
    assert "CLIP or SigLIP" in err


@pytest.mark.parametrize("name, scores", [("hf:openai/clip-vit-base-patch32", "cosine"),
                                          ("siglip-base", "sigmoid")])
def test_search_by_words_on_a_text_tower_store(capsys, photos, tmp_path, hf_cache,
                                               monkeypatch, name, scores):
    monkeypatch.setenv("IMGATLAS_CACHE", str(hf_cache))
    ws = str(tmp_path / "ws")
    code, _, err = cli(capsys, "run", str(photos), "-w", ws, "--backbone", name, "--k", "3")
    assert code == 0, err
    code, out, err = cli(capsys, "search", "-w", ws, "--text", "a dog", "--json", "--k", "5")
    assert code == 0, err
    (res,) = json.loads(out)
    assert res["matched"][0]["scores"] == scores and len(res["results"]) == 5
    sims = [r["cosine"] for r in res["results"]]
    assert sims == sorted(sims, reverse=True)
    if scores == "sigmoid":
        assert all(0 <= r["score"] <= 1 for r in res["results"])
    # the ranking is the text tower's: the same as cosines computed here
    from imgatlas.api import load_features
    from imgatlas.backbones import create_backbone

    ids, X, _ = load_features(ws)
    q = create_backbone(name, cache_dir=hf_cache).text_tower().embed_queries(["a dog"])[0]
    cos = (X @ q) / np.linalg.norm(X, axis=1)
    assert [r["id"] for r in res["results"]] == [int(ids[i]) for i in np.argsort(-cos)[:5]]


def test_serve_answers_words_on_a_clip_store(photos, tmp_path, hf_cache, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from imgatlas import api
    from imgatlas.serve import create_app

    monkeypatch.setenv("IMGATLAS_CACHE", str(hf_cache))
    ws = tmp_path / "ws"
    api.run(photos, ws, backbone="clip-vit-b32", k=3)
    c = TestClient(create_app(ws, cache_dir=hf_cache))
    r = c.get("/api/search/text", params={"q": "a red dress", "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == 4 and "text tower" in body["index"]
    # an upload is embedded by the store's own backbone (the export, at its precision)
    r = c.post("/api/search", files={"image": ("q.jpg", SAMPLES[4].read_bytes(),
                                               "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["similarity"] > 0.99  # the photo itself is in the store


def test_missing_model_offline_is_two_lines_at_most_and_writes_no_store(
        capsys, photos, tmp_path, hf_cache, monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(hf_cache))
    ws = tmp_path / "ws"
    code, _, err = cli(capsys, "run", str(photos), "-w", str(ws), "--backbone",
                       "hf:nobody/missing")
    one_line(code, err, most=2)
    assert "imgatlas backbones fetch hf:nobody/missing" in err
    assert not list((ws / "features").glob("*.bin")) if (ws / "features").exists() else True


def test_fetch_says_what_to_copy_and_the_copy_runs_offline(capsys, photos, tmp_path, hf_cache,
                                                           hf_hub, monkeypatch):
    code, out, err = cli(capsys, "backbones", "fetch", "dinov2-small", "--cache-dir",
                         str(hf_cache), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["exported"] and res["dim"] == 32
    code, out, _ = cli(capsys, "backbones", "fetch", "dinov2-small", "--cache-dir",
                       str(hf_cache), "--json")
    assert not json.loads(out)["exported"]
    # an offline machine: no Hugging Face cache at all, the folder copied into its cache
    other = tmp_path / "other-cache" / "backbones" / "hf"
    other.mkdir(parents=True)
    shutil.copytree(res["folder"], other / Path(res["folder"]).name)
    env = _env(tmp_path, IMGATLAS_CACHE=str(tmp_path / "other-cache"),
               HF_HOME=str(tmp_path / "empty-hf"))
    r = _imgatlas(env, ["run", str(photos), "-w", str(tmp_path / "ws2"), "--backbone",
                        "dinov2-small", "--k", "2"], block=("torch", "transformers"))
    assert r.returncode == 0, r.stderr


def test_later_runs_need_neither_torch_nor_transformers(photos, tmp_path, hf_cache):
    env = _env(tmp_path, IMGATLAS_CACHE=str(hf_cache))
    ws = str(tmp_path / "ws")
    r = _imgatlas(env, ["run", str(photos), "-w", ws, "--backbone", "hf:openai/clip-vit-base-"
                        "patch32", "--k", "2"])
    assert r.returncode == 0, r.stderr
    for f in SAMPLES[1::4][:3]:  # new images arrive
        shutil.copy(f, photos / f.parent.name / ("new-" + f.name))
    r = _imgatlas(env, ["run", str(photos), "-w", ws, "--backbone",
                        "hf:openai/clip-vit-base-patch32", "--k", "2", "--json"],
                  block=("torch", "transformers"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embed"]["embedded"] == 3
    r = _imgatlas(env, ["search", "-w", ws, "--text", "a dog", "--json"],
                  block=("torch", "transformers"))
    assert r.returncode == 0, r.stderr


def test_first_use_without_the_extra_names_the_install_line(photos, tmp_path, hf_cache):
    env = _env(tmp_path, IMGATLAS_CACHE=str(hf_cache))
    r = _imgatlas(env, ["run", str(photos), "-w", str(tmp_path / "ws"), "--backbone",
                        "hf:facebook/dinov2-small"], block=("torch", "transformers"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "imgatlas[foundation]" in r.stderr


def test_a_gated_model_asks_for_a_token(capsys, photos, tmp_path, hf_cache, monkeypatch):
    import transformers

    def gated(*a, **k):
        raise OSError("You are trying to access a gated repo.\nMake sure to have access to "
                      "it at https://huggingface.co/org/model.\n401 Client Error.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", gated)
    monkeypatch.setenv("IMGATLAS_CACHE", str(hf_cache))
    code, _, err = cli(capsys, "run", str(photos), "-w", str(tmp_path / "ws"), "--backbone",
                       "hf:org/gated-model")
    one_line(code, err)
    assert "HF_TOKEN" in err


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(extra)
    return env


def _imgatlas(env: dict[str, str], argv: list[str], block: tuple[str, ...] = ()
              ) -> subprocess.CompletedProcess[str]:
    """``imgatlas ARGV`` in a fresh process where the ``block`` modules cannot be imported
    (and the test fails if anything tried to import them after all)."""
    code = ("import sys\n"
            f"BLOCK = {list(block)!r}\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in BLOCK:\n"
            "            raise ImportError(f'{name} is blocked by the test')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from imgatlas.cli import main\n"
            f"rc = main({argv!r})\n"
            "assert not [m for m in BLOCK if m in sys.modules], 'imported'\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
