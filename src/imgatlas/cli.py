"""The ``imgatlas`` command: a thin face over :mod:`imgatlas.api`.

Errors: every :class:`~imgatlas.errors.ImgatlasError` becomes one line on stderr and a
non-zero exit; Ctrl-C/SIGTERM exit 130 with the workspace intact. Tracebacks only with
``--debug``.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from imgatlas import __version__, api
from imgatlas.decode import DEFAULT_MAX_PIXELS
from imgatlas.errors import ImgatlasError

_debug = False

workspace_opt = click.option(
    "--workspace", "-w", required=True, type=click.Path(file_okay=False),
    help="Workspace directory (catalog + features).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
wait_opt = click.option("--wait", type=float, default=0.0, show_default=True,
                        help="Seconds to wait for another process holding the workspace.")
progress_opt = click.option("--progress/--no-progress", default=None,
                            help="Progress bar (default: when stderr is a terminal).")


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _emit(data: dict[str, Any], as_json: bool, human) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human(data)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgatlas")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def cli(debug: bool) -> None:
    """Organise, search and classify a folder of unlabelled images."""
    global _debug
    _debug = debug


# -- scan --------------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", type=click.Path())
@workspace_opt
@click.option("--labels-from-folders", is_flag=True, help="Label = name of the parent folder.")
@click.option("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Images with more pixels are refused as decompression bombs.")
@click.option("--workers", type=int, default=4, show_default=True)
@wait_opt
@progress_opt
@json_opt
def scan(directory, workspace, labels_from_folders, max_pixels, workers, wait, progress,
         as_json):
    """Find the images under DIRECTORY and record them in the workspace (incremental)."""
    res = api.scan(directory, workspace, labels_from_folders=labels_from_folders,
                   max_pixels=max_pixels, workers=workers, progress=_progress(progress),
                   wait=wait)
    _emit(res, as_json, _print_scan)


def _print_scan(r: dict[str, Any]) -> None:
    click.echo(f"scanned {r['found']} files in {r['seconds']:.1f}s: {r['new']} new, "
               f"{r['changed']} changed, {r['unchanged']} unchanged, {r['removed']} removed")
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in sorted(r["by_status"].items())))
    if r["exact_duplicates"]:
        click.echo(f"  exact duplicates: {r['exact_duplicates']}")


# -- embed -------------------------------------------------------------------------------------
@cli.command()
@workspace_opt
@click.option("--backbone", default="efficientnet_lite0", show_default=True,
              help="Registered backbone name, or a path to an .onnx file with a .json spec.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto",
              show_default=True)
@click.option("--threads", type=int, default=None, help="ONNX Runtime threads (default: cores).")
@click.option("--workers", type=int, default=2, show_default=True, help="Decode threads.")
@click.option("--l2-normalize", is_flag=True, help="Store unit-length vectors.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where exported models are cached (default $IMGATLAS_CACHE or "
                   "~/.cache/imgatlas).")
@wait_opt
@progress_opt
@json_opt
def embed(workspace, backbone, batch_size, device, threads, workers, l2_normalize, dtype,
          cache_dir, wait, progress, as_json):
    """Compute feature vectors for every usable image (resumes where it stopped)."""
    res = api.embed(workspace, backbone=backbone, batch_size=batch_size, device=device,
                    threads=threads, workers=workers, l2_normalize=l2_normalize, dtype=dtype,
                    cache_dir=cache_dir, progress=_progress(progress), wait=wait)
    _emit(res, as_json, _print_embed)


def _print_embed(r: dict[str, Any]) -> None:
    rate = f" ({r['images_per_second']} img/s)" if r["embedded"] else ""
    click.echo(f"embedded {r['embedded']} images with {r['backbone']} in "
               f"{r['seconds']:.1f}s{rate}; {r['already_done']} were already done, "
               f"{r['failed']} failed to decode")
    click.echo(f"  feature store: {r['store']} ({r['dim']}-d)")


# -- status ------------------------------------------------------------------------------------
@cli.command()
@workspace_opt
@json_opt
def status(workspace, as_json):
    """Counts per status, every failed file with its reason, and the feature stores."""
    _emit(api.status(workspace), as_json, _print_status)


def _print_status(r: dict[str, Any]) -> None:
    click.echo(f"workspace {r['workspace']}: {r['images']} files, {r['usable']} usable, "
               f"{r['labels']} labels")
    for k, v in sorted(r["by_status"].items()):
        click.echo(f"  {k:<15} {v}")
    for s in r["stores"]:
        click.echo(f"  features {s['key']}: {s['embedded']} x {s['dim']} {s['dtype']}")
    if r["failed"]:
        click.echo("failed files:")
        for f in r["failed"]:
            click.echo(f"  [{f['status']}] {f['path']}: {f['reason']}")


# -- export-features ---------------------------------------------------------------------------
@cli.command("export-features")
@workspace_opt
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="FILE.parquet, or FILE.npy (+ FILE.csv with id, path, label per row).")
@click.option("--features", default=None, help="Feature store key or backbone name.")
@json_opt
def export_features(workspace, out, features, as_json):
    """Write ids, paths, labels and feature vectors to Parquet or .npy."""
    res = api.export_features(workspace, out, features=features)
    _emit(res, as_json, lambda r: click.echo(
        f"wrote {r['rows']} x {r['dim']} features to {', '.join(r['files'])}"))


# -- run ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", type=click.Path())
@click.option("--workspace", "-w", type=click.Path(file_okay=False), default=None,
              help="Workspace directory (default: DIRECTORY/../<name>.imgatlas).")
@click.option("--labels-from-folders", is_flag=True)
@click.option("--backbone", default="efficientnet_lite0", show_default=True)
@progress_opt
@json_opt
def run(directory, workspace, labels_from_folders, backbone, progress, as_json):
    """The main job: scan DIRECTORY, embed it, and summarise (reuses the workspace)."""
    import os

    if workspace is None:
        d = os.path.abspath(directory)
        workspace = os.path.join(os.path.dirname(d), os.path.basename(d) + ".imgatlas")
    p = _progress(progress)
    scan_res = api.scan(directory, workspace, labels_from_folders=labels_from_folders,
                        progress=p)
    embed_res = api.embed(workspace, backbone=backbone, progress=p)
    st = api.status(workspace)
    res = {"workspace": str(workspace), "scan": scan_res, "embed": embed_res, "status": st}

    def human(r):
        _print_scan(r["scan"])
        _print_embed(r["embed"])
        _print_status(r["status"])

    _emit(res, as_json, human)


# -- entry point -------------------------------------------------------------------------------
def _sigterm(signum, frame):  # SIGTERM ends a run the way Ctrl-C does: cleanly
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        cli.main(args=argv, prog_name="imgatlas", standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        click.echo("Interrupted; the workspace is consistent: run the same command again to "
                   "resume.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted; the workspace is consistent: run the same command again to "
                   "resume.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except ImgatlasError as e:
        if _debug:
            raise
        click.echo(f"Error: {e}", err=True)
        return e.exit_code
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug: still one line unless --debug
        if _debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"Internal error ({type(e).__name__}: {msg}); rerun with --debug for "
                   "details and please report it.", err=True)
        return 70


if __name__ == "__main__":
    sys.exit(main())
