"""Every command's numeric and spec options, given 0, negative, huge and malformed values:
each is either accepted or refused in one line with a usage exit code, never an
"Internal error" or a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import pytest

from conftest import clustered_and_trained, colour_groups
from imgatlas import api
from imgatlas.cli import cli, main

NUMBER = (click.types.IntParamType, click.types.FloatParamType)
BAD = ("0", "-3", "1e15", "x7", "99999999999999999999")
# options that name things rather than count them: swept with malformed specs instead
SPECS = {"--k": ("0", "1", "-3", "auto:x", "99999999999999999999"),
         "--k-range": ("5", "9-2", "0-3", "a-b", "2-99999999999999999999"),
         "--reduce": ("pca:0", "pca-whiten:128:7", "knn-smooth:-2", "umap:x", "nope", ","),
         "--codes": ("pq:0", "itq:999999", "sign:-8", "hnsw:x", "nope"),
         "--within": ("1:x", "-3:0", "99999999999999999999:1", ":"),
         "--to": ("-3", "x", "99999999999999999999"),
         "--exclude": ("nope", ""),
         "--compare": ("0", "-3", "99999999999999999999")}
SKIP = {"--workspace", "--cache-dir", "--out", "--model", "--as-folders", "--report",
        "--adapter", "--pairs", "--address", "--backbone", "--features", "--name", "--labels",
        "--text", "--kind", "--host", "--token", "--sketch", "--classes"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, cache_dir):
    root = colour_groups(tmp_path_factory.mktemp("sweep") / "img",
                         {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)},
                         6, shape=(32, 40), ext="png")
    return clustered_and_trained(root, cache_dir), root


def _base(cmd: str, ws: Path, root: Path, tmp: Path, cache: Path) -> list[str]:
    """Arguments that make each command otherwise runnable on the small workspace."""
    w, c, img, model = ["-w", str(ws)], ["--cache-dir", str(cache)], str(root / "red" / "0.png"), \
        str(ws / "models" / "m")
    return {
        "algorithms": [],
        "compare-models": ["--model", model, "--model", model, str(root), *c],
        "embed": [*w, "--backbone", "test_tiny", *c],
        "evaluate-model": ["--model", model, str(root), *c],
        "evaluate-sketch": [*w, str(root), *c],
        "export": [*w, "--as-folders", str(tmp / "folders")],
        "export-clusters": [*w, "--out", str(tmp / "c.csv")],
        "export-features": [*w, "--out", str(tmp / "f.npy")],
        "index": [*w, *c],
        "merge": [*w, "0", "1"],
        "move": [*w, "--to", "1", "1"],
        "name-cluster": [*w, "--run", "3", "0", "reds"],
        "predict": ["--model", model, img, *c],
        "report": [*w, "--out", str(tmp / "report"), "--no-progress"],
        "run": [str(root), "-w", str(tmp / "run-ws"), "--backbone", "test_tiny"],
        "scan": [str(root), *w],
        "search": [*w, img, *c],
        "set-aside": [*w, "1"],
        "split": [*w, "0"],
        "train": [*w, "--name", "sweep", *c],
        "train-autoencoder": [*w, "--epochs", "1", "--max-images", "18"],
        "train-sketch": [*w, "--pairs", str(root), *c],
    }.get(cmd, [*w])


def _cases():
    for name, cmd in sorted(cli.commands.items()):
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag and p.opts[0] not in SKIP:
                numeric = isinstance(p.type, NUMBER)
                if numeric or p.opts[0] in SPECS:
                    for v in SPECS.get(p.opts[0], BAD):
                        yield name, p.opts[0], p.nargs, v
            elif isinstance(p, click.Argument) and isinstance(p.type, NUMBER):
                for v in BAD:
                    yield name, p.name, p.nargs, v


CASES = list(_cases())


def test_the_sweep_covers_every_command_with_numbers():
    swept = {c for c, *_ in CASES}
    assert {"cluster", "embed", "index", "search", "train", "serve", "split", "inspect",
            "evaluate-retrieval", "train-autoencoder", "report"} <= swept
    assert len(CASES) > 300


@pytest.mark.parametrize("command,option,nargs,value", CASES,
                         ids=[f"{c}{o}={v}" for c, o, _, v in CASES])
def test_bad_numbers_are_one_line(command, option, nargs, value, ws, tmp_path, cache_dir,
                                  capsys, monkeypatch):
    ws_path, root = ws
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache_dir))
    uvicorn = pytest.importorskip("uvicorn") if command == "serve" else None
    if uvicorn is not None:  # an accepted value would start a server: stop at its door
        monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    argv = [command, *_base(command, ws_path, root, tmp_path, cache_dir)]
    if option.startswith("--"):
        argv += [option, *[value] * max(1, nargs)]
    else:  # a positional number: in place of the base's positionals
        before = {"move": ["--to", "1"], "name-cluster": ["--run", "3"]}.get(command, [])
        after = ["reds"] if command == "name-cluster" else []
        argv = [command, "-w", str(ws_path), *before, value, *after]
    if command == "train-autoencoder":
        pytest.importorskip("torch")
    code = main(argv)
    err = capsys.readouterr().err
    assert "Internal error" not in err and "Traceback" not in err, err
    if code != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error"), err
        assert code in (1, 2, 3, 4, 5, 64, 65, 66, 69, 73, 74, 75, 78), (code, err)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("argv", [
    ["cluster", "--k", "0"], ["cluster", "--k", "1"], ["cluster", "--n-init", "0"],
    ["cluster", "--reduce", "pca:0"], ["cluster", "--reduce", "pca-whiten:128:7"],
    ["cluster", "--seed", "-1"], ["cluster", "--seed", "99999999999999999999"],
    ["index", "--codes", "pq:0"], ["search", "--k", "0"], ["split", "0", "--k", "1"],
    ["evaluate-retrieval", "--queries", "0"], ["evaluate-retrieval", "--holdout", "1"],
    ["embed", "--batch-size", "0"], ["clusters", "--run", "-3"],
])
def test_these_are_refused(argv, ws, capsys):
    code = main([argv[0], "-w", str(ws[0]), *argv[1:]])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("Error") and "Internal error" not in err, err


def test_cli_defaults_are_the_apis():
    """An option the API function of the same command also takes shows the API's default
    (None: the API decides)."""
    import inspect

    checked = 0
    for name, cmd in cli.commands.items():
        func = getattr(api, name.replace("-", "_"), None)
        if func is None or not callable(func):
            continue
        sig = inspect.signature(func).parameters
        for p in cmd.params:
            given = p.default is not None and type(p.default).__name__ != "Sentinel"
            if isinstance(p, click.Option) and p.name in sig and given and not p.is_flag \
                    and sig[p.name].default is not inspect.Parameter.empty:
                want = sig[p.name].default
                got = p.default if not isinstance(want, str) else str(p.default)
                assert got == want, (name, p.name, p.default, want)
                checked += 1
    assert checked >= 25
