from __future__ import annotations

import json

import pytest

from imgatlas import __version__, api
from imgatlas.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_scan_embed_status_export_json(capsys, image_dir, tmp_path, cache_dir):
    ws = str(tmp_path / "ws")
    code, out, _ = run(capsys, "scan", str(image_dir), "-w", ws, "--labels-from-folders",
                       "--json")
    assert code == 0 and json.loads(out)["found"] == 12
    code, out, _ = run(capsys, "embed", "-w", ws, "--backbone", "test_tiny", "--cache-dir",
                       str(cache_dir), "--json", "--no-progress")
    assert code == 0 and json.loads(out)["embedded"] == 12
    code, out, _ = run(capsys, "status", "-w", ws, "--json")
    st = json.loads(out)
    assert st["by_status"] == {"ok": 12} and st["labels"] == 3
    code, out, _ = run(capsys, "status", "-w", ws)
    assert "12 usable" in out
    code, out, _ = run(capsys, "export-features", "-w", ws, "--out", str(tmp_path / "f.parquet"))
    assert code == 0 and (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("argv,needle", [
    (["scan", "/definitely/not/here", "-w", "{ws}"], "does not exist"),
    (["scan", "{empty}", "-w", "{ws}"], "No images found"),
    (["status", "-w", "{ws}"], "No workspace"),
    (["embed", "-w", "{ws}", "--backbone", "nope"], "No workspace"),
    (["export-features", "-w", "{ws}", "--out", "x.txt"], "must end in .parquet or .npy"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, tmp_path, argv, needle):
    (tmp_path / "empty").mkdir()
    argv = [a.format(ws=tmp_path / "ws", empty=tmp_path / "empty") for a in argv]
    code, _, err = run(capsys, *argv)
    _one_line_error(code, err)
    assert needle in err


def test_unknown_backbone(capsys, image_dir, tmp_path):
    api.scan(image_dir, tmp_path / "ws")
    code, _, err = run(capsys, "embed", "-w", str(tmp_path / "ws"), "--backbone", "nope")
    _one_line_error(code, err)
    assert "Unknown backbone 'nope'" in err


def test_newer_workspace(capsys, image_dir, tmp_path):
    from conftest import set_schema_version

    api.scan(image_dir, tmp_path / "ws")
    set_schema_version(tmp_path / "ws", 99)
    code, _, err = run(capsys, "status", "-w", str(tmp_path / "ws"))
    _one_line_error(code, err)
    assert "upgrade imgatlas" in err


def test_ctrl_c_is_clean(capsys, image_dir, tmp_path, cache_dir, monkeypatch):
    from imgatlas.embed import _embedder

    api.scan(image_dir, tmp_path / "ws")
    calls = {"n": 0}
    real = _embedder.Embedder.features

    def interrupted(self, pixels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, pixels)

    monkeypatch.setattr(_embedder.Embedder, "features", interrupted)
    code, _, err = run(capsys, "embed", "-w", str(tmp_path / "ws"), "--backbone", "test_tiny",
                       "--cache-dir", str(cache_dir), "--batch-size", "4", "--no-progress")
    assert code == 130 and "run the same command again" in err
    _one_line_error(code, err)
    monkeypatch.undo()
    st = api.status(tmp_path / "ws")
    assert st["stores"][0]["embedded"] == 4  # the first batch was kept
    res = api.embed(tmp_path / "ws", backbone="test_tiny", cache_dir=cache_dir)
    assert res["embedded"] == 8


def test_locked_workspace_exit_code(capsys, image_dir, tmp_path):
    from imgatlas.store import Workspace

    api.scan(image_dir, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws", write=True, purpose="embed"):
        code, _, err = run(capsys, "scan", str(image_dir), "-w", str(tmp_path / "ws"))
    _one_line_error(code, err)
    assert code == 75 and "in use by another imgatlas process" in err


def test_run_does_the_main_job_and_reuses_the_workspace(capsys, image_dir, tmp_path,
                                                        cache_dir, monkeypatch):
    monkeypatch.setenv("IMGATLAS_CACHE", str(cache_dir))
    ws = str(tmp_path / "ws")
    code, out, _ = run(capsys, "run", str(image_dir), "-w", ws, "--labels-from-folders",
                       "--backbone", "test_tiny", "--k", "3", "--json")
    res = json.loads(out)
    assert code == 0 and res["embed"]["embedded"] == 12
    assert res["cluster"]["n_clusters"] == 3 and 0 <= res["evaluation"]["acc"] <= 1
    assert res["report"]["index"].endswith("index.html")
    code, out, _ = run(capsys, "run", str(image_dir), "-w", ws, "--labels-from-folders",
                       "--backbone", "test_tiny", "--k", "3")
    assert code == 0 and "embedded 0 images" in out and "ACC" in out
    assert "(reused: same parameters, same images)" in out
    assert f"report: {res['report']['index']}" in out
