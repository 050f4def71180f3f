"""Check imgatlas installed the way users install it, away from the source tree.

1. Build the sdist, then the wheel from the sdist (what ``pip install imgatlas-*.tar.gz``
   and ``python -m build`` do), and compare both with the git-tracked files under
   ``src/imgatlas/``: a file the package opens but the wheel leaves out fails here.
2. Install the wheel with the ``serve`` extra into a fresh venv outside the checkout.
3. There, from a folder outside the checkout and with an empty model cache: the default
   ``imgatlas run`` on a copy of ``samples/clothing`` (it must embed at int8, on the
   calibration shipped in the wheel), ``python -m imgatlas --version``, and ``imgatlas
   serve`` answering ``/api/health``, a page and a static file.

    python scripts/check_install.py [--wheel FILE] [--keep]

``make test`` runs it after the test suite (so ``.ci/run`` does). ``--wheel`` checks a given
wheel instead of building one (a doctored wheel shows that the check fails). Exits 1 with
the failing step's reason on one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/imgatlas/"


class CheckFailed(Exception):
    pass


def package_files_in_tree(root: Path = ROOT) -> set[str]:
    """Paths under ``src/imgatlas/`` (relative to it) that git tracks, plus untracked ones
    git does not ignore (the backend ships those too)."""
    out: set[str] = set()
    for extra in ([], ["--others", "--exclude-standard"]):
        listed = subprocess.run(["git", "ls-files", "-z", *extra, PACKAGE], cwd=root,
                                check=True, capture_output=True).stdout
        out |= {p.decode()[len(PACKAGE):] for p in listed.split(b"\0") if p}
    return {p for p in out if (root / PACKAGE / p).is_file()}  # a deleted, tracked file


def package_files_in_wheel(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n[len("imgatlas/"):] for n in z.namelist()
                if n.startswith("imgatlas/") and not n.endswith("/")}


def package_files_in_sdist(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as t:
        names = [n.split("/", 1)[1] for n in t.getnames() if n.count("/")]
    return {n[len(PACKAGE):] for n in names if n.startswith(PACKAGE)}


def compare(expected: set[str], shipped: set[str], what: str) -> list[str]:
    """Problems with ``shipped`` against the tree: every file must ship, nothing else."""
    problems = [f"{what} lacks src/imgatlas/{p}" for p in sorted(expected - shipped)]
    problems += [f"{what} holds imgatlas/{p}, which the source tree does not"
                 for p in sorted(shipped - expected)]
    return problems


def build(out: Path) -> tuple[Path, Path]:
    """sdist, then the wheel built from it, as ``python -m build`` does by default."""
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], "build")
    (sdist,) = out.glob("imgatlas-*.tar.gz")
    (wheel,) = out.glob("imgatlas-*.whl")
    return sdist, wheel


def run(cmd: list[str], step: str, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise CheckFailed(f"{step}: exit {res.returncode}: {tail[0]}")
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback only
        return r.status, r.headers.get("content-type", ""), r.read()


def check_serve(imgatlas: Path, workspace: Path, env: dict[str, str], cwd: Path) -> None:
    port = free_port()
    log = (cwd / "serve.log").open("w")
    proc = subprocess.Popen([str(imgatlas), "serve", "--workspace", str(workspace),
                             "--port", str(port)], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, body = get(f"{base}/api/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    last = (cwd / "serve.log").read_text().strip().splitlines()[-1:]
                    raise CheckFailed(f"serve: no answer on {base}: {last}") from None
                time.sleep(0.5)
        if status != 200 or not json.loads(body):
            raise CheckFailed(f"serve: /api/health answered {status}")
        status, ctype, body = get(f"{base}/")
        if status != 200 or "text/html" not in ctype or b"</html>" not in body:
            raise CheckFailed(f"serve: / answered {status} {ctype}")
        status, ctype, body = get(f"{base}/static/app.css")
        if status != 200 or "css" not in ctype or not body:
            raise CheckFailed(f"serve: /static/app.css answered {status} {ctype}")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def check(work: Path, wheel: Path | None, say: Callable[[str], None]) -> None:
    in_git = (ROOT / ".git").exists()
    expected = package_files_in_tree() if in_git else None
    if wheel is None:
        sdist, wheel = build(work / "dist")
        if expected is not None:
            problems = compare(expected, package_files_in_sdist(sdist), sdist.name)
            if problems:
                raise CheckFailed(f"{problems[0]} ({len(problems)} problems)")
        say(f"built {sdist.name} and, from it, {wheel.name}")
    if expected is not None:
        problems = compare(expected, package_files_in_wheel(wheel), wheel.name)
        if problems:
            raise CheckFailed(f"{problems[0]} ({len(problems)} problems)")
        say(f"both hold the {len(expected)} files under src/imgatlas/")

    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], "venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    run([*pip, f"{wheel}[serve]"], "pip install wheel[serve]")
    say("installed with [serve] into a fresh venv")

    # Away from the checkout: no source tree on the path, an empty model cache.
    home = work / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(IMGATLAS_CACHE=str(work / "cache"), HOME=str(home),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    photos = shutil.copytree(ROOT / "samples" / "clothing", home / "photos")
    imgatlas = venv / "bin" / "imgatlas"
    where = run([str(venv / "bin" / "python"), "-c",
                 "import imgatlas; print(imgatlas.__file__)"], "import", cwd=home, env=env)
    if str(ROOT) in where.stdout:
        raise CheckFailed(f"import: imgatlas came from the checkout ({where.stdout.strip()})")
    res = run([str(imgatlas), "run", str(photos), "--workspace", "W", "--json"],
              "imgatlas run", cwd=home, env=env)
    out = json.loads(res.stdout)
    if out["embed"]["precision"] != "int8":
        raise CheckFailed(f"imgatlas run: embedded at {out['embed']['precision']}, not int8")
    if not (home / "W" / "report" / "index.html").is_file():
        raise CheckFailed("imgatlas run: no report/index.html")
    n = out["embed"]["embedded"]
    if n != sum(1 for p in photos.rglob("*") if p.is_file()):
        raise CheckFailed(f"imgatlas run: embedded {n} images of {photos}")
    say(f"imgatlas run (default job, int8, empty model cache): {n} images, report written")

    version = run([str(venv / "bin" / "python"), "-m", "imgatlas", "--version"],
                  "python -m imgatlas --version", cwd=home, env=env).stdout.strip()
    if not version.startswith("imgatlas, version "):
        raise CheckFailed(f"python -m imgatlas --version printed {version!r}")
    say(f"python -m imgatlas --version: {version}")

    check_serve(imgatlas, home / "W", env, home)
    say("imgatlas serve: /api/health, / and /static/app.css answer")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="check this wheel instead of building one")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgatlas-install-"))
    t0 = time.perf_counter()
    try:
        check(work, args.wheel.resolve() if args.wheel else None,
              lambda line: print(f"install check: {line}", flush=True))
    except CheckFailed as e:
        print(f"install check FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"install check: scratch folder kept at {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"install check: passed in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
