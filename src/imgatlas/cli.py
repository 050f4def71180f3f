"""The ``imgatlas`` command: a thin face over :mod:`imgatlas.api`.

Errors: every :class:`~imgatlas.errors.ImgatlasError` becomes one line on stderr and a
non-zero exit; Ctrl-C/SIGTERM exit 130 with the workspace intact. Tracebacks only with
``--debug``.
"""

from __future__ import annotations

import json
import signal
import sys
from inspect import signature
from typing import Any

import click

from imgatlas import api, defaults
from imgatlas._version import __version__
from imgatlas.cluster import CLUSTERERS
from imgatlas.errors import ConfigError, ImgatlasError, as_user_error
from imgatlas.index import spec_help as codes_help
from imgatlas.inspect import CHECKS, exclusion_names
from imgatlas.reduce import spec_help as reduce_help
from imgatlas.registry import Registry

_debug = False

def api_default(func: Any, name: str) -> Any:
    """The API's default for ``name``: the CLI shows it and never restates it."""
    return signature(func).parameters[name].default


workspace_opt = click.option(
    "--workspace", "-w", required=True, type=click.Path(file_okay=False),
    help="Workspace directory (catalog + features).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
wait_opt = click.option("--wait", type=click.FloatRange(min=0),
                        default=api_default(api.scan, "wait"), show_default=True,
                        help="Seconds to wait for another process holding the workspace.")

PROPAGATION_METHODS = defaults.PROPAGATION_METHODS
COUNT = click.IntRange(min=1)
MAX_ID = 2**63 - 1  # SQLite's integers
RUN = click.IntRange(1, MAX_ID)  # run and image ids start at 1
IMAGE = RUN
CLUSTER = click.IntRange(-1, MAX_ID)  # -1: noise (density methods)
WORKERS = click.IntRange(1, 1024)
BATCH = click.IntRange(1, 65_536)
EPOCHS = click.IntRange(1, 100_000)
seed_opt = click.option("--seed", type=click.IntRange(0, defaults.MAX_SEED),
                        default=defaults.SEED, show_default=True)
progress_opt = click.option("--progress/--no-progress", default=None,
                            help="Progress bar (default: when stderr is a terminal).")


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _emit(data: Any, as_json: bool, human) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human(data)


def registry_options(registry: Registry):
    """One click option per parameter any entry of ``registry`` takes, its help naming
    the entries that use it: the CLI's options come from the registry, not an if-chain."""

    def deco(f):
        for name, (p, users) in reversed(list(registry.all_params().items())):
            kind = p.click_type()
            default = f" [{p.default}]" if p.default is not None and len(users) == 1 else ""
            f = click.option(p.flag, name, type=kind, default=None,
                             help=f"{', '.join(users)}: {p.help}{default}")(f)
        return f

    return deco


def registry_values(registry: Registry, method: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options given for ``method``; one it does not take is a one-line error."""
    entry = registry[method]
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        if entry.param(name) is None:
            p, users = registry.all_params()[name]
            raise ConfigError(f"{p.flag} applies to {', '.join(users)}, not {method}.")
        out[name] = value
    return out


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
@click.option("--max-pixels", type=COUNT, default=api_default(api.scan, "max_pixels"),
              show_default=True,
              help="Images with more pixels are refused as decompression bombs.")
@click.option("--workers", type=WORKERS,
              default=api_default(api.scan, "workers"), show_default=True)
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


def engine_opts(what: str) -> Any:
    """--engine, --address and --num-workers: where a stage's shards run."""
    def wrap(f: Any) -> Any:
        f = click.option("--num-workers", type=click.IntRange(min=1), default=None,
                         help="Ray workers (default: as many as the cluster's cores allow)."
                         )(f)
        f = click.option("--address", default=None,
                         help="Ray cluster to join (default: RAY_ADDRESS, or a local one).")(f)
        return click.option("--engine", type=click.Choice(defaults.ENGINES),
                            default=api_default(api.embed, "engine"),
                            show_default=True,
                            help=f"ray: {what} (pip install 'imgatlas[ray]').")(f)
    return wrap


# -- embed -------------------------------------------------------------------------------------

precision_opt = click.option(
    "--precision", type=click.Choice(defaults.PRECISIONS),
    default=api_default(api.embed, "precision"), show_default=True,
    help="int8: a quantised copy of the backbone calibrated on images shipped with imgatlas "
         "(1.3-1.4x the model speed on 2 CPU cores; features at cosine ~0.995 to fp32). "
         "auto: what the workspace already holds, else int8 for EfficientNet-Lite and for "
         "Hugging Face models whose int8 export agreed with fp32 (dynamic int8 weights).")


@cli.command()
@workspace_opt
@click.option("--backbone", default=defaults.BACKBONE, show_default=True,
              help="Registered backbone name (imgatlas backbones), hf:ORG/NAME[@REVISION] for "
                   "a Hugging Face model, or a path to an .onnx file with a .json spec.")
@click.option("--batch-size", type=BATCH, default=api_default(api.embed, "batch_size"),
              show_default=True)
@click.option("--device", type=click.Choice(defaults.DEVICES),
              default=api_default(api.embed, "device"),
              show_default=True)
@click.option("--threads", type=WORKERS,
              default=None, help="ONNX Runtime threads (default: cores).")
@click.option("--workers", type=WORKERS,
              default=api_default(api.embed, "workers"), show_default=True,
              help="Decode threads.")
@click.option("--l2-normalize", is_flag=True, help="Store unit-length vectors.")
@click.option("--dtype", type=click.Choice(defaults.DTYPES),
              default=api_default(api.embed, "dtype"),
              show_default=True)
@precision_opt
@engine_opts("shards embedded by Ray Data actors, each with one ONNX Runtime session")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where exported models are cached (default $IMGATLAS_CACHE or "
                   "~/.cache/imgatlas).")
@wait_opt
@progress_opt
@json_opt
def embed(workspace, backbone, batch_size, device, threads, workers, l2_normalize, dtype,
          precision, engine, address, num_workers, cache_dir, wait, progress, as_json):
    """Compute feature vectors for every usable image (resumes where it stopped)."""
    res = api.embed(workspace, backbone=backbone, batch_size=batch_size, device=device,
                    threads=threads, workers=workers, l2_normalize=l2_normalize, dtype=dtype,
                    precision=precision, engine=engine, address=address,
                    num_workers=num_workers, cache_dir=cache_dir,
                    progress=_progress(progress), wait=wait)
    _emit(res, as_json, _print_embed)


def _print_embed(r: dict[str, Any]) -> None:
    rate = f" ({r['images_per_second']} img/s)" if r["embedded"] else ""
    at = f" ({r['precision']})" if r.get("precision", "fp32") != "fp32" else ""
    click.echo(f"embedded {r['embedded']} images with {r['backbone']}{at} in "
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
    c = r.get("inspection")
    if c is None:
        click.echo("  not inspected yet (imgatlas inspect)")
    else:
        flagged = ", ".join(f"{k} {c[k]}" for k in CHECKS.names() if c.get(k))
        click.echo(f"  near-duplicates: {c['near_duplicate_groups']} groups, "
                   f"{c['near_duplicate_copies']} copies; flagged: {flagged or 'nothing'}")
    if r["failed"]:
        click.echo("failed files:")
        for f in r["failed"]:
            click.echo(f"  [{f['status']}] {f['path']}: {f['reason']}")


# -- inspect -----------------------------------------------------------------------------------
@cli.command("inspect")
@workspace_opt
@click.option("--features", default=None, help="Feature store key or backbone name.")
@registry_options(CHECKS)
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Groups and flagged images listed per kind (the counts are complete; "
                   "--json lists everything).")
@click.option("--splits", default=None, metavar="TRAIN,TEST",
              help="Top-level folders that are the collection's splits (train,val,test): "
                   "near-duplicates across them are leaks; --exclude leaks leaves out the "
                   "copies outside the first.")
@engine_opts("the new images' searches run as parallel tasks (the same pairs)")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="New images searched per shard (bounds the vectors in memory per "
                   "worker) [32768].")
@click.option("--fresh", is_flag=True,
              help="Compare every image again, not only the new or changed ones.")
@wait_opt
@progress_opt
@json_opt
def inspect_cmd(workspace, features, limit, splits, engine, address, num_workers, shard_size,
                fresh, wait, progress, as_json, **thresholds):
    """Find near-duplicate groups and flag blurry, dark, bright, nearly uniform, tiny,
    oddly shaped, grey and outlying images (incremental: only new images are compared)."""
    options: dict[str, dict[str, Any]] = {}
    params = CHECKS.all_params()
    for name, value in thresholds.items():
        if value is not None:
            options.setdefault(params[name][1][0], {})[name] = value
    res = api.inspect(workspace, features=features, options=options, splits=splits,
                      engine=engine, address=address, num_workers=num_workers,
                      shard_size=shard_size, fresh=fresh, progress=_progress(progress),
                      wait=wait)
    _emit(res, as_json, lambda r: _print_inspection(r, limit))


def _print_inspection(r: dict[str, Any], limit: int) -> None:
    run, c = r.get("run"), r["counts"]
    if run:
        click.echo(f"inspected {run['n_images']} images in {run['seconds']:.1f}s "
                   f"({run['n_compared']} compared with the collection, {run['n_measured']} "
                   "measured here)")
    click.echo(f"  near-duplicates: {c['near_duplicate_groups']} groups, "
               f"{c['near_duplicate_copies']} copies beside the one to keep")
    flagged = ", ".join(f"{k} {c[k]}" for k in CHECKS.names() if c.get(k))
    click.echo(f"  flagged: {flagged or 'nothing'}")
    if r.get("splits"):
        click.echo(f"  leaks across {', '.join(r['splits'])}: {c.get('leaks', 0)} groups")
        for lk in r["leaks"][:limit]:
            click.echo("    " + "  |  ".join(f"{s}: {m}" for s, m in
                                             zip(lk["splits"], lk["members"], strict=True))
                       + f"  (similarity {lk['similarity']:.2f})")
    for g in r["near_duplicate_groups"][:limit]:
        click.echo(f"  keep {g['keep']}")
        for path, why in zip(g["copies"], g["evidence"], strict=True):
            click.echo(f"    copy {path}  ({why})")
    shown: dict[str, int] = {}
    for f in r["flags"]:
        if shown.get(f["flag"], 0) < limit:
            shown[f["flag"]] = shown.get(f["flag"], 0) + 1
            click.echo(f"  [{f['flag']}] {f['path']}: {f['reason']}")


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


# -- cluster ---------------------------------------------------------------------------------
def _k_option(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected an int or 'auto', got {value!r}") from None


def _k_range(value: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected LO:HI such as 2:30, got {value!r}") from None
    if not 2 <= lo <= hi:
        raise click.BadParameter(f"need 2 <= LO <= HI, got {value!r}")
    return lo, hi


def _run_clusters(value: str) -> tuple[int, list[int]]:
    try:
        run_id, clusters = value.split(":")
        run, cs = int(run_id), [int(c) for c in clusters.split(",")]
        if not 1 <= run <= MAX_ID or not all(-1 <= c <= MAX_ID for c in cs):
            raise ValueError
        return run, cs
    except ValueError:
        raise click.BadParameter(f"expected RUN:C[,C...] such as 3:0,4, got {value!r}") from None


def _exclusion(value: str) -> list[Any]:
    """One --exclude value: RUN:C[,C...] (clusters of a run), or names of what inspect found."""
    if ":" in value:
        return [_run_clusters(value)]
    return [v.strip() for v in value.split(",") if v.strip()]


EXCLUDE_NAMES = ", ".join(exclusion_names())
exclude_opt = click.option(
    "--exclude", default=None,
    help=f"Leave out what the latest inspection found: {EXCLUDE_NAMES} (comma-separated).")


@cli.command("cluster")
@workspace_opt
@click.option("--features", default=None, help="Feature store key or backbone name.")
@click.option("--reduce", "reduce_", default=defaults.REDUCE, show_default=True,
              help=reduce_help())
@click.option("--method", default=defaults.METHOD, show_default=True,
              type=click.Choice(CLUSTERERS.names()),
              help="; ".join(f"{e.name}: {e.help}" for e in CLUSTERERS))
@click.option("--k", "k", default=str(defaults.K), show_default=True,
              help="Number of clusters, or 'auto' to choose it by the k sweep.")
@click.option("--k-range", default=None,
              help="LO:HI: the top-level sweep of --k auto [2:30]; groups are split further "
                   "where their parts are clearly separated.")
@registry_options(CLUSTERERS)
@seed_opt
@click.option("--within", default=None,
              help="RUN:C[,C...]: re-cluster the members of those clusters of a run.")
@click.option("--exclude", multiple=True,
              help="RUN:C[,C...]: leave those clusters out; or what the latest inspection "
                   f"found: {EXCLUDE_NAMES} (comma-separated; repeatable).")
@engine_opts("fit on a sample, every image assigned per shard in parallel")
@click.option("--sample-size", type=click.IntRange(min=3), default=None,
              help="Fit on a seeded sample of this many images, then assign every image "
                   "shard by shard [100000 with --engine ray].")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help=f"Images per shard when assigning [{defaults.SHARD_SIZE}].")
@click.option("--from-run", type=RUN, default=None,
              help="With --k N: N groups derived from that run without clustering again "
                   "(fewer: its merge tree is cut; more: its loosest clusters are split).")
@wait_opt
@json_opt
def cluster_cmd(workspace, features, reduce_, method, k, k_range, seed, within, exclude,
                engine, address, num_workers, sample_size, shard_size, from_run, wait,
                as_json, **method_options):
    """Group the images: reduce, cluster, validate, and record the run."""
    options = registry_values(CLUSTERERS, method, method_options)
    res = api.cluster(workspace, features=features, reduce=reduce_, method=method,
                      k=_k_option(k), k_range=_k_range(k_range) if k_range else None,
                      options=options, seed=seed,
                      within=_run_clusters(within) if within else None,
                      exclude=[x for e in exclude for x in _exclusion(e)], engine=engine,
                      sample_size=sample_size, shard_size=shard_size, address=address,
                      num_workers=num_workers, from_run=from_run, wait=wait)
    _emit(res, as_json, _print_cluster)


def _print_cluster(r: dict[str, Any]) -> None:
    iv = r["internal"]
    sil = f"{iv['silhouette']:.3f}" if iv.get("silhouette") is not None else "n/a"
    reused = " (reused: same parameters, same images)" if r.get("reused") else ""
    if r.get("derived_from") is not None:
        reused = (f" (derived from run {r['derived_from']}: {_edit_text(r['edit'])}; "
                  "undo with 'imgatlas undo')")
    click.echo(f"run {r['run_id']}: {r['n_images']} images -> {r['n_clusters']} clusters "
               f"({r['method']} on {r['reduce']}, {r['reduced_dim']}-d) in "
               f"{r['timings']['total']:.1f}s{reused}")
    if r.get("k_selection"):
        click.echo(f"  k chosen: {r['k_selection']['reason']}")
    click.echo(f"  silhouette {sil}, Hopkins {iv['hopkins']:.3f}, noise {iv['noise_share']:.1%}")
    click.echo("  sizes: " + ", ".join(f"{c}:{n}" for c, n in r["sizes"].items()))


def _edit_text(edit: dict[str, Any]) -> str:
    op = edit.get("op")
    if op == "move":
        return f"{len(edit['images'])} image(s) moved to cluster {edit['to']}"
    if op == "set_aside":
        return f"{len(edit['images'])} image(s) set aside"
    if op == "merge":
        return f"clusters {', '.join(map(str, edit['clusters']))} merged into {edit['into']}"
    if op == "split":
        return f"cluster {edit['cluster']} split into {', '.join(map(str, edit['into']))}"
    if op == "regroup":
        return f"{edit['from']} clusters regrouped into {edit['k']}"
    if op == "grow":
        return (f"{edit['added']} new image(s) placed in their nearest neighbours' clusters, "
                f"{edit['removed']} gone; 'run --refit' clusters everything again")
    return str(op)


def _to(value: str) -> int | str:
    if value == "new":
        return "new"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a cluster id or 'new', got {value!r}") from None


run_opt = click.option("--run", "run_id", type=RUN, default=None,
                       help="The run to correct (default: the latest).")


@cli.command("move")
@workspace_opt
@run_opt
@click.option("--to", "to", required=True, help="A cluster id, or 'new' for a new cluster.")
@click.argument("images", nargs=-1, type=IMAGE, required=True)
@wait_opt
@json_opt
def move_cmd(workspace, run_id, to, images, wait, as_json):
    """Move IMAGES (ids) to another cluster or a new one (a new run; undo takes it back)."""
    _emit(api.move(workspace, list(images), _to(to), run=run_id, wait=wait), as_json,
          _print_cluster)


@cli.command("merge")
@workspace_opt
@run_opt
@click.argument("clusters", nargs=-1, type=CLUSTER, required=True)
@wait_opt
@json_opt
def merge_cmd(workspace, run_id, clusters, wait, as_json):
    """Merge CLUSTERS into the first one given (a new run; undo takes it back)."""
    _emit(api.merge(workspace, list(clusters), run=run_id, wait=wait), as_json,
          _print_cluster)


@cli.command("split")
@workspace_opt
@run_opt
@click.argument("cluster_id", type=CLUSTER)
@click.option("--k", "k", type=click.IntRange(min=2), default=api_default(api.split, "k"),
              show_default=True,
              help="Parts to split it in.")
@wait_opt
@json_opt
def split_cmd(workspace, run_id, cluster_id, k, wait, as_json):
    """Split a cluster by clustering its members again (a new run; undo takes it back)."""
    _emit(api.split(workspace, cluster_id, k=k, run=run_id, wait=wait), as_json,
          _print_cluster)


@cli.command("set-aside")
@workspace_opt
@run_opt
@click.argument("images", nargs=-1, type=IMAGE, required=True)
@wait_opt
@json_opt
def set_aside_cmd(workspace, run_id, images, wait, as_json):
    """Take IMAGES (ids) out of every cluster, as junk (a new run; undo takes it back)."""
    _emit(api.set_aside(workspace, list(images), run=run_id, wait=wait), as_json,
          _print_cluster)


@cli.command("undo")
@workspace_opt
@click.option("--run", "run_id", type=RUN, default=None,
              help="The correction to undo (default: the latest run).")
@wait_opt
@json_opt
def undo_cmd(workspace, run_id, wait, as_json):
    """Undo the latest correction: the run it edited is the latest again, as it was."""
    _emit(api.undo(workspace, run=run_id, wait=wait), as_json, lambda r: click.echo(
        f"undid run {r['undone']} ({_edit_text(r['edit'])}); run {r['run_id']} is the "
        "latest again"))


@cli.command("evaluate")
@workspace_opt
@click.option("--run", "run_id", type=RUN, default=None, help="Run id (default: latest).")
@json_opt
def evaluate_cmd(workspace, run_id, as_json):
    """Score a clustering run against folder labels: ACC, NMI, ARI, purity."""
    res = api.evaluate(workspace, run_id)

    def human(r):
        click.echo(f"run {r['run_id']}: ACC {r['acc']:.3f}  NMI {r['nmi']:.3f}  "
                   f"ARI {r['ari']:.3f}  purity {r['purity']:.3f}  "
                   f"({r['n_images']} images, {r['n_clusters']} clusters, "
                   f"{r['n_classes']} classes)")
        for c, comp in r["composition"].items():
            top = ", ".join(f"{k} {v:.0%}" for k, v in list(comp["shares"].items())[:3])
            click.echo(f"  cluster {c} ({comp['size']}): {top}")

    _emit(res, as_json, human)


@cli.command("runs")
@workspace_opt
@click.option("--kind", default=None, help="scan, embed, cluster ...")
@json_opt
def runs_cmd(workspace, kind, as_json):
    """List the recorded runs with their parameters and results."""
    res = api.runs(workspace, kind)

    def human(rs):
        for r in rs:
            res_ = r["results"] or {}
            extra = ""
            if r["kind"] == "cluster" and res_:
                ev = res_.get("evaluation") or {}
                extra = (f" {res_.get('method')} on {res_.get('reduce')}, "
                         f"k={res_.get('n_clusters')}"
                         + (f", ACC {ev['acc']:.3f}" if ev else ""))
            if r.get("error"):
                extra += f" ({r['error']})"
            click.echo(f"{r['id']:>4} {r['kind']:<18} {r['status']:<11} v{r['version']}{extra}")

    if as_json:
        click.echo(json.dumps(res, indent=2, default=str))
    else:
        human(res)


@cli.command("name-cluster")
@workspace_opt
@click.option("--run", "run_id", type=RUN, required=True)
@click.argument("cluster_id", type=CLUSTER)
@click.argument("name", required=False)
@click.option("--accept", is_flag=True, help="Take the cluster's suggested name.")
def name_cluster_cmd(workspace, run_id, cluster_id, name, accept):
    """Name a cluster of a run (for exports and reports), or --accept its suggestion."""
    res = api.name_cluster(workspace, run_id, cluster_id, name, accept=accept)
    click.echo(f"run {run_id}: cluster {cluster_id} is now {res['name']!r}")


@cli.command("clusters")
@workspace_opt
@click.option("--run", "run_id", type=RUN, default=None, help="Cluster run (default: latest).")
@click.option("--accept", is_flag=True,
              help="Give every unnamed cluster its suggested name first.")
@json_opt
def clusters_cmd(workspace, run_id, accept, as_json):
    """Each cluster with its name, suggested name (from its members' ImageNet classes and
    WordNet) and tags."""
    res = api.clusters(workspace, run_id, accept=accept)

    def human(rs):
        for r in rs:
            if r["name"]:
                name = repr(r["name"])
            elif r["suggested_name"]:
                name = f"(suggested: {r['suggested_name']})"
            else:
                name = "(no name)"
            tags = ", ".join(f"{t} {s:.0%}" for t, s in r["tags"][:3])
            click.echo(f"{r['cluster']:>4} {r['size']:>6}  {name}  [{tags}]")

    if as_json:
        click.echo(json.dumps([{k: r[k] for k in ("cluster", "size", "name", "suggested_name",
                                                  "tags")} for r in res], indent=2))
    else:
        human(res)


@cli.command("export-clusters")
@workspace_opt
@click.option("--run", "run_id", type=RUN, default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="FILE.csv or FILE.parquet")
@json_opt
def export_clusters_cmd(workspace, run_id, out, as_json):
    """Write each image's cluster assignment to CSV or Parquet."""
    res = api.export_clusters(workspace, out, run_id)
    _emit(res, as_json, lambda r: click.echo(f"wrote {r['rows']} rows to {r['file']}"))


@cli.command("export")
@workspace_opt
@click.option("--as-folders", "out", default=None, type=click.Path(file_okay=False),
              help="Folder to write: one folder per cluster, _near-duplicates/, "
                   "_review/<flag>/, manifest.csv.")
@click.option("--as-dataset", "dataset", default=None, type=click.Path(file_okay=False),
              help="New folder to write a training set into: train/<label>/, val/<label>/, "
                   "test/<label>/ (ImageFolder layout) and manifest.csv.")
@click.option("--run", "run_id", type=RUN, default=None,
              help="--as-folders: the cluster run (default: the latest).")
@click.option("--split", default=api_default(api.export_dataset, "split"), show_default=True,
              help="--as-dataset: the shares of train,val,test (or train,test).")
@click.option("--labels", default=api_default(api.export_dataset, "labels"),
              show_default=True,
              help="--as-dataset: folders, user, run:ID or a CSV file (path or sha256, label).")
@click.option("--exclude", default=None,
              help="--as-dataset: what inspect found to leave out, comma-separated "
                   "(default: every near-duplicate copy and flagged image; 'none': nothing).")
@seed_opt
@click.option("--mode", type=click.Choice(defaults.EXPORT_MODES),
              default=api_default(api.export, "mode"),
              show_default=True,
              help="link: symbolic links to the originals; hardlink: the same files under "
                   "a second name (one file system); copy: independent copies.")
@click.option("--link", "mode", flag_value="link", help="Same as --mode link.")
@click.option("--hardlink", "mode", flag_value="hardlink", help="Same as --mode hardlink.")
@click.option("--copy", "mode", flag_value="copy", help="Same as --mode copy.")
@wait_opt
@json_opt
def export_cmd(workspace, out, dataset, run_id, split, labels, exclude, seed, mode, wait,
               as_json):
    """Write the organised collection out as folders, or as a training set (the source is
    never touched)."""
    if (out is None) == (dataset is None):
        raise click.UsageError("give one of --as-folders OUT and --as-dataset OUT")
    if dataset is not None:
        res = api.export_dataset(workspace, dataset, split=split, labels=labels,
                                 exclude=[] if exclude == "none" else exclude, seed=seed,
                                 mode=mode, wait=wait)
        return _emit(res, as_json, _print_dataset)
    res = api.export(workspace, out, run=run_id, mode=mode, wait=wait)

    def human(r):
        click.echo(f"exported {r['images']} images of run {r['run_id']} to {r['out']} "
                   f"({r['mode']})")
        for name, n in r["folders"].items():
            click.echo(f"  {n:>6}  {name}")
        click.echo(f"  manifest: {r['manifest']}")

    _emit(res, as_json, human)


def _print_dataset(r: dict[str, Any]) -> None:
    click.echo(f"exported a training set of {r['images']} images to {r['out']} ({r['mode']})")
    click.echo("  " + ", ".join(f"{s} {n}" for s, n in r["splits"].items()))
    for label, per in r["labels"].items():
        click.echo(f"  {label:<24} " + "  ".join(f"{s} {n}" for s, n in per.items()))
    if r["left_out"]:
        click.echo("  left out: " + ", ".join(f"{w} {n}" for w, n in r["left_out"].items()))
    for note in r["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"  manifest: {r['manifest']}")


@cli.command("train-autoencoder")
@workspace_opt
@click.option("--preset", type=click.Choice(defaults.AUTOENCODER_PRESETS),
              default=api_default(api.train_autoencoder, "preset"), show_default=True,
              help="apparel: 240x320x3, 32-16-8; fashion: 28x28x1, 16-8-8; default: ours.")
@click.option("--epochs", type=EPOCHS, default=api_default(api.train_autoencoder, "epochs"),
              show_default=True)
@click.option("--batch-size", type=BATCH, default=api_default(api.train_autoencoder, "batch_size"),
              show_default=True)
@click.option("--val-split", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=api_default(api.train_autoencoder, "val_split"), show_default=True)
@click.option("--patience", type=EPOCHS, default=api_default(api.train_autoencoder, "patience"),
              show_default=True,
              help="Stop after this many epochs without a better validation loss.")
@click.option("--max-images", type=COUNT, default=api_default(api.train_autoencoder, "max_images"),
              show_default=True)
@seed_opt
@click.option("--device", type=click.Choice(defaults.AUTOENCODER_DEVICES),
              default=api_default(api.train_autoencoder, "device"), show_default=True)
@progress_opt
@json_opt
def train_autoencoder_cmd(workspace, preset, epochs, batch_size, val_split, patience,
                          max_images, seed, device, progress, as_json):
    """Train a convolutional autoencoder on the collection; its encoder becomes a backbone."""
    res = api.train_autoencoder(workspace, preset=preset, epochs=epochs,
                                batch_size=batch_size, val_split=val_split, patience=patience,
                                max_images=max_images, seed=seed, device=device,
                                progress=_progress(progress))

    def human(r):
        click.echo(f"trained {preset} autoencoder for {r['epochs_run']} epochs "
                   f"({'stopped early' if r['stopped_early'] else 'all epochs'}) in "
                   f"{r['seconds']:.1f}s; best validation MSE {r['best_val_loss']:.5f}")
        click.echo(f"  encoder: {r['onnx']} ({r['dim']}-d)")
        click.echo(f"  use it:  imgatlas embed --workspace {workspace} --backbone {r['onnx']}")

    _emit(res, as_json, human)


# -- classify ----------------------------------------------------------------------------------
@cli.command("train")
@workspace_opt
@click.option("--labels", default=api_default(api.train, "labels"), show_default=True,
              help="folders (folder names), user (labels given in the workspace), run:ID "
                   "(the named clusters of a run), or a CSV file with path or sha256, label.")
@click.option("--mode", type=click.Choice(defaults.TRAIN_MODES),
              default=api_default(api.train, "mode"),
              show_default=True,
              help="head: logistic regression and an MLP on the cached features (NumPy); "
                   "finetune: then the backbone's last blocks with augmentation (PyTorch); "
                   "cnn-small: the studies' small CNN from scratch, a baseline (PyTorch).")
@click.option("--name", default=None, help="Model folder name under W/models (default: "
                                           "MODE-rRUN).")
@click.option("--folds", type=click.IntRange(min=2), default=None,
              help="Stratified k-fold instead of the 70/30 split.")
@click.option("--features", default=None, help="Feature store key or backbone name.")
@click.option("--epochs", type=EPOCHS, default=None,
              help="finetune / cnn-small: maximum epochs (early stopping decides).")
@click.option("--tune-blocks", type=click.IntRange(1, 8), default=None,
              help="finetune: how many of the backbone's last blocks train [4].")
@click.option("--views", type=click.IntRange(0, 32), default=None,
              help="finetune: augmented views cached per training image [4].")
@seed_opt
@exclude_opt
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@wait_opt
@progress_opt
@json_opt
def train_cmd(workspace, labels, mode, name, folds, features, epochs, tune_blocks, views, seed,
              exclude, cache_dir, wait, progress, as_json):
    """Train a classifier on the labelled images; save it under W/models/NAME/."""
    res = api.train(workspace, labels=labels, mode=mode, name=name, folds=folds,
                    features=features, seed=seed, epochs=epochs, cache_dir=cache_dir,
                    tune_blocks=tune_blocks, views=views, exclude=exclude,
                    progress=_progress(progress), wait=wait)

    def human(r):
        m = r["metrics"]
        click.echo(f"trained {r['mode']} model {r['name']} on {r['n_images']} images, "
                   f"{len(r['classes'])} classes, in {r['seconds']:.1f}s")
        for note in r["notes"]:
            click.echo(f"  note: {note}")
        cv = m.get("estimate_kind") == "cross-validated"
        for head, h in r["heads"].items():
            if cv:
                click.echo(f"  {head:<16} cross-validated acc {h['accuracy']:.3f}  balanced "
                           f"{h['balanced_accuracy']:.3f}")
            else:
                click.echo(f"  {head:<9} val acc {h['val_accuracy']:.3f}  test acc "
                           f"{h['accuracy']:.3f}  balanced {h['balanced_accuracy']:.3f}")
        if cv:
            e = m["estimate"]
            click.echo(f"  model: {r.get('selection')}, refitted on all {e['images']} images; "
                       f"expected accuracy {e['accuracy']:.3f} ± {e['standard_error']:.3f} "
                       f"({e['folds']}-fold); ECE {m['ece_uncalibrated']:.3f} -> "
                       f"{m['ece']:.3f} after temperature {r['temperature']:.2f}")
        elif m:
            click.echo(f"  model: test accuracy {m['accuracy']:.3f}; ECE "
                       f"{m['ece_uncalibrated']:.3f} -> {m['ece']:.3f} after temperature "
                       f"{r['temperature']:.2f}")
        click.echo(f"  saved: {r['model']}")

    _emit(res, as_json, human)


@cli.command("predict")
@click.option("--model", "model", required=True, type=click.Path(file_okay=False),
              help="A model folder (W/models/NAME).")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--k", type=COUNT, default=api_default(api.predict, "k"), show_default=True)
@click.option("--min-probability", type=click.FloatRange(0, 1), default=None,
              help="Say 'unknown' below this calibrated probability (default: the model's).")
@click.option("--min-similarity", type=click.FloatRange(-1, 1), default=None,
              help="Say 'unknown' when less similar than this to every training image "
                   "(default: the model's).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@json_opt
def predict_cmd(model, images, k, min_probability, min_similarity, cache_dir, as_json):
    """What each IMAGE is: top-k classes with calibrated probabilities, or 'unknown'."""
    res = api.predict(model, list(images), k=k, min_probability=min_probability,
                      min_similarity=min_similarity, cache_dir=cache_dir)

    def human(rs):
        for r in rs:
            tops = ", ".join(f"{t['label']} {t['probability']:.2f}" for t in r["top_k"])
            why = f" ({r['reason']})" if r["abstained"] else ""
            click.echo(f"{r['path']}: {r['label']}{why}  [{tops}]")

    _emit(res, as_json, human)


def _print_scores(r: dict[str, Any]) -> None:
    click.echo(f"{r['model']} on {r['data']}: accuracy {r['accuracy']:.3f}, balanced "
               f"{r['balanced_accuracy']:.3f}, ECE {r['ece']:.3f} ({r['n_images']} images; "
               f"{r['n_excluded_training']} left out as training images)")
    if r.get("n_unknown_class"):
        click.echo(f"  left out: {r['n_unknown_class']} images of classes the model does not "
                   f"know ({', '.join(r['unknown_classes'])})")
    for c, s in r["per_class"].items():
        click.echo(f"  {c:<20} precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
                   f"F1 {s['f1']:.3f}  ({s['support']})")


@cli.command("evaluate-model")
@click.option("--model", "model", required=True, type=click.Path(file_okay=False))
@click.argument("data", type=click.Path())
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@json_opt
def evaluate_model_cmd(model, data, cache_dir, as_json):
    """Score a model on DATA: a folder of class folders, or a workspace with labels."""
    _emit(api.evaluate_model(model, data, cache_dir=cache_dir), as_json, _print_scores)


@cli.command("compare-models")
@click.option("--model", "models", required=True, multiple=True,
              type=click.Path(file_okay=False), help="Give it twice: A then B.")
@click.argument("data", type=click.Path())
@click.option("--method", type=click.Choice(defaults.MCNEMAR_METHODS),
              default=api_default(api.compare_models, "method"), show_default=True,
              help="auto: exact binomial when b + c < 25, chi-square with continuity "
                   "correction otherwise.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@json_opt
def compare_models_cmd(models, data, method, cache_dir, as_json):
    """McNemar's test: do models A and B differ in accuracy on the same images of DATA?"""
    if len(models) != 2:
        raise click.BadParameter("give --model exactly twice (A and B)")
    res = api.compare_models(models[0], models[1], data, method=method, cache_dir=cache_dir)

    def human(r):
        t = r["table"]
        click.echo(f"{r['n_images']} images: A {r['model_a']} {r['accuracy_a']:.3f}, "
                   f"B {r['model_b']} {r['accuracy_b']:.3f}; difference "
                   f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
        click.echo(f"  both right {t['a']}, only A {t['b']}, only B {t['c']}, both wrong "
                   f"{t['d']}")
        click.echo(f"  McNemar ({r['method']}): statistic {r['statistic']:.3f}, "
                   f"p = {r['p_value']:.4g}")

    _emit(res, as_json, human)


@cli.command("label-propagate")
@workspace_opt
@click.option("--labels", default=api_default(api.suggest_labels, "labels"), show_default=True,
              help="A CSV file (path or sha256, label), user, folders or run:ID.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="CSV of every image's label and confidence.")
@click.option("--apply", is_flag=True, help="Store the spread labels in the workspace.")
@click.option("--features", default=None)
@click.option("--method", type=click.Choice(PROPAGATION_METHODS),
              default=api_default(api.label_propagate, "method"), show_default=True,
              help="How to spread them; auto: the method that predicts the given labels "
                   "best, each fold held out in turn (clusters while no class has two).")
@seed_opt
@wait_opt
@json_opt
def label_propagate_cmd(workspace, labels, out, apply, features, method, seed, wait, as_json):
    """Spread a few labels per class over the whole collection."""
    res = api.label_propagate(workspace, labels=labels, out=out, apply=apply,
                              features=features, method=method, seed=seed, wait=wait)

    def human(r):
        click.echo(f"spread {r['n_given']} labels over {r['n_images']} images "
                   f"({len(r['classes'])} classes) by {r['method']}"
                   + (f"; wrote {r['out']}" if r["out"] else "")
                   + (f"; stored {r['applied']} labels" if r["applied"] else ""))
        e = r["estimate"]
        click.echo(f"  {r['method']}: {r['choice']}"
                   + (f"; estimated accuracy {e['accuracy']:.3f} ± {e['standard_error']:.3f}"
                      if e else ""))
        for name, est in r["estimates"].items():
            click.echo(f"    {name:<14} {est['accuracy']:.3f}")
        for note in r["notes"]:
            click.echo(f"  note: {note}")
        click.echo("  accuracy on held-back labels, by labels per class:")
        for c in r["curve"]:
            click.echo(f"    {c['labels_per_class']:>3}: " + ", ".join(
                f"{m} {c[m]:.3f}" for m in PROPAGATION_METHODS[1:] if m in c))

    _emit(res, as_json, human)


@cli.command("suggest-labels")
@workspace_opt
@click.option("--n", "n", type=COUNT,
              default=api_default(api.suggest_labels, "n"), show_default=True)
@click.option("--labels", default=api_default(api.suggest_labels, "labels"), show_default=True,
              help="The labels given so far: user, folders, run:ID or a CSV file.")
@click.option("--features", default=None)
@seed_opt
@json_opt
def suggest_labels_cmd(workspace, n, labels, features, seed, as_json):
    """Which images to label next: uncertain ones, spread over the collection."""
    res = api.suggest_labels(workspace, n=n, labels=labels, features=features, seed=seed)

    def human(rs):
        if not rs:
            click.echo("every usable image is labelled already")
        elif len(rs) < n:
            click.echo(f"Warning: asked for {n}, but only {len(rs)} images are without a "
                       "label", err=True)
        for r in rs:
            click.echo(f"{r['id']:>7}  {r['path']}  ({r['reason']})")

    _emit(res, as_json, human)


# -- search ----------------------------------------------------------------------------------
CODES_HELP = codes_help() + " (default: itq:512+dsh, fewer bits below 1,024 images)"


@cli.command("index")
@workspace_opt
@click.option("--codes", default=None, help=CODES_HELP)
@click.option("--features", default=None, help="Feature store key or backbone name.")
@seed_opt
@click.option("--sketch", is_flag=True,
              help="The sketch index, for search --sketch: embeds the photos' line maps "
                   "and fits the line->photo map on this collection's photos.")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="With --sketch: a sketch adapter folder (train-sketch).")
@click.option("--adapt", is_flag=True,
              help="With --sketch: first distil the line branch's last blocks on this "
                   "collection's photos (PyTorch, minutes per 1,000 photos; reused until the "
                   "collection changes by more than "
                   f"{defaults.REFIT_GROWTH:.0%}).")
@click.option("--refit", is_flag=True, help="With --adapt: distil again even so.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@engine_opts("an IVF-PQ index trained on a sample, codes added per shard in parallel")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="Build an IVF-PQ index in shards of this many vectors (memory: one shard "
                   f"of floats per worker) [{defaults.SHARD_SIZE} with --engine ray].")
@exclude_opt
@wait_opt
@progress_opt
@json_opt
def index_cmd(workspace, codes, features, seed, sketch, adapter, adapt, refit, cache_dir,
              engine, address, num_workers, shard_size, exclude, wait, progress, as_json):
    """Build a search index over the features (replaces the old one atomically)."""
    res = api.build_index(workspace, codes=codes, features=features, seed=seed, sketch=sketch,
                          adapter=adapter, adapt=adapt, refit=refit, cache_dir=cache_dir,
                          engine=engine,
                          shard_size=shard_size, address=address, num_workers=num_workers,
                          exclude=exclude, progress=_progress(progress), wait=wait)
    def human(r):
        d = r.get("distilled")
        if d:
            click.echo(("reused the line branch distilled" if d.get("reused") else
                        "distilled the line branch") + f" on {d['photos']} photos "
                       f"(held-out loss {d['val_loss_before']:.3f} -> {d['val_loss']:.3f}, "
                       f"{d['epochs_run']} epochs, {d['seconds']:.0f}s)")
        if "map" in r:
            m = r["map"]
            click.echo(f"fitted the line->photo map on {m['n_photos']} photos in "
                       f"{m['fit_seconds']:.1f}s (sketch offset: {m['sketch_shift']})")
        click.echo(f"indexed {r['n']} images with {r['codes']} ({r['factory']}) in "
                   f"{r['build_seconds']:.1f}s: {r['code_bytes']:g} code bytes, "
                   f"{r['index_bytes']:g} index bytes per image")

    _emit(res, as_json, human)


@cli.command("search")
@workspace_opt
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--id", "ids", type=IMAGE, multiple=True, help="Query by image id (repeatable).")
@click.option("--text", default=None,
              help="Query by a word: an ImageNet class or a WordNet group ('golden "
                   "retriever', 'dog', 'vehicle'), ranked by the images' tags.")
@click.option("--k", type=COUNT, default=api_default(api.search, "k"), show_default=True)
@click.option("--codes", default=None, help="Which index (default: the latest built).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--ef-search", type=click.IntRange(min=1), default=None,
              help="Graph indexes (hnsw, hnswpq): search breadth, more for recall "
                   f"[{defaults.EF_SEARCH}].")
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="ivfpq indexes: inverted lists scanned per query, more for recall "
                   f"[{defaults.NPROBE}].")
@click.option("--sketch", "sketches", multiple=True, type=click.Path(dir_okay=False),
              help="A drawing (PNG, transparency = background): find photos of what it "
                   "shows (repeatable; needs index --sketch).")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="With --sketch: the sketch adapter the sketch index was built with.")
@click.option("--no-expand", is_flag=True,
              help="With --sketch: one search, without query expansion.")
@json_opt
def search_cmd(workspace, images, ids, text, k, codes, cache_dir, ef_search, nprobe, sketches,
               adapter, no_expand, as_json):
    """Find the images most like IMAGE... (any files), --id N (images in the workspace) or
    --sketch DRAWING.png."""
    if sketches:
        if images or ids or text:
            raise click.BadParameter("give --sketch alone, not with images, --id or --text")
        res = api.search_sketch(workspace, list(sketches), k=k, adapter=adapter, codes=codes,
                                cache_dir=cache_dir, expand=not no_expand)
    else:
        if adapter or no_expand:
            raise click.BadParameter("--adapter and --no-expand go with --sketch")
        res = api.search(workspace, list(images), ids=list(ids), text=text, k=k, codes=codes,
                         cache_dir=cache_dir, ef_search=ef_search, nprobe=nprobe)

    def human(rs):
        for r in rs:
            click.echo(f"{r['query']}:")
            for n, h in enumerate(r["results"], 1):
                lab = f" [{h['label']}]" if h["label"] else ""
                click.echo(f"  {n:>3}. {h['similarity']:.3f}  {h['path']}{lab}")

    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        human(res)


@cli.command("evaluate-retrieval")
@workspace_opt
@click.option("--codes", multiple=True, help=CODES_HELP + "; repeat to compare.")
@click.option("--features", default=None)
@click.option("--queries", type=COUNT, default=api_default(api.evaluate_retrieval, "n_queries"),
              show_default=True,
              help="Queries (a seeded sample when there are more).")
@click.option("--holdout", type=click.FloatRange(0, 1, max_open=True),
              default=api_default(api.evaluate_retrieval, "holdout"), show_default=True,
              help="Keep this fraction of the images out of fitting and query with them "
                   "(0 = leave-one-out over every image).")
@seed_opt
@wait_opt
@json_opt
def evaluate_retrieval_cmd(workspace, codes, features, queries, holdout, seed, wait, as_json):
    """Retrieval quality per code family: mAP, MRR, P@10, latency, bytes per image."""
    res = api.evaluate_retrieval(workspace, list(codes) or None, features=features,
                                 n_queries=queries, seed=seed, holdout=holdout, wait=wait)

    def human(r):
        click.echo(f"{r['n_images']} images, {r['protocol']}, relevance = same label")
        click.echo(f"  {'codes':<18} {'mAP':>6} {'MRR':>6} {'P@10':>6} {'p50 ms':>7} "
                   f"{'p99 ms':>7} {'bytes':>7} {'build s':>8}")
        for spec, m in r["codes"].items():
            if "error" in m:
                click.echo(f"  {spec:<18} not built: {m['error']}")
                continue
            click.echo(f"  {spec:<18} {m['map']:6.3f} {m['mrr']:6.3f} {m['p_at_10']:6.3f} "
                       f"{m['ms_per_query_p50']:7.2f} {m['ms_per_query_p99']:7.2f} "
                       f"{m['bytes_per_image']:7g} {m['build_seconds']:8.2f}")

    _emit(res, as_json, human)


# -- algorithms ------------------------------------------------------------------------------
@cli.command("algorithms")
@json_opt
def algorithms_cmd(as_json):
    """Every algorithm imgatlas picks by name: backbones, reductions, clustering methods and
    search-code families, with their parameters and help."""
    res = api.algorithms()

    def human(r):
        for kind, entries in r.items():
            click.echo(f"{kind}:")
            for e in entries:
                needs = f" [needs the '{e['needs']}' extra]" if e.get("needs") else ""
                click.echo(f"  {e['name']:<20} {e['help']}{needs}")
                for p in e.get("params", []):
                    default = "" if p["default"] is None else f" (default {p['default']})"
                    click.echo(f"      {p['name']}: {p['help']}{default}")

    _emit(res, as_json, human)


# -- backbones -------------------------------------------------------------------------------
@cli.group("backbones", invoke_without_command=True)
@json_opt
@click.pass_context
def backbones_cmd(ctx, as_json):
    """The backbones you can name: the shipped EfficientNet-Lite family and foundation
    models from the Hugging Face hub (any hf:ORG/NAME of the dinov2, clip and siglip
    families; these short names for the common ones)."""
    if ctx.invoked_subcommand is not None:
        return
    res = api.backbones()

    def human(rows):
        for r in rows:
            size = "x".join(str(v) for v in r["input_size"] or []) or "-"
            extra = ""
            if "licence" in r:
                state = "ready" if r.get("ready") else "fetch on first use"
                extra = (f"  {r['params_m']}M params, {r['licence']}, "
                         f"{'text + image' if r['text'] else 'image'}; {state}")
            click.echo(f"{r['name']:<20} {r['dim'] or '-':>5}-d {size:>9}  {r['help']}{extra}")

    _emit(res, as_json, human)


@backbones_cmd.command("fetch")
@click.argument("name")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="imgatlas' model cache [$IMGATLAS_CACHE or ~/.cache/imgatlas].")
@json_opt
def backbones_fetch(name, cache_dir, as_json):
    """Download a Hugging Face model (NAME: a short name or hf:ORG/NAME[@REVISION]) and
    export it for imgatlas once, on a connected machine with the foundation extra."""
    res = api.fetch_backbone(name, cache_dir=cache_dir)

    def human(r):
        q = "int8" if r["int8"] else "fp32 (int8 disagreed with it)"
        click.echo(f"{r['backbone']}: {r['dim']}-d {r['family']} at commit {r['commit'][:12]}, "
                   f"runs at {q}{', with a text tower' if r['text_tower'] else ''}"
                   f"{'' if r['exported'] else ' (already exported)'}")
        click.echo(f"offline machines: copy {r['folder']} to {r['copy_to']}")

    _emit(res, as_json, human)


@cli.command("evaluate-sketch")
@workspace_opt
@click.argument("sketch_dir", type=click.Path())
@click.option("--adapter", type=click.Path(file_okay=False), default=None)
@click.option("--codes", default=None, help="Which sketch index (default: the latest).")
@click.option("--tta", is_flag=True,
              help="Average each drawing over 3 margins and their mirror images.")
@click.option("--max-queries", type=COUNT, default=None)
@click.option("--no-expand", is_flag=True,
              help="One search per drawing, without query expansion.")
@click.option("--exclude-source-photo", is_flag=True,
              help="Leave each sketch's own source photo (NAME-K.png draws NAME.jpg) out of "
                   "its ranking: only other photos of the class count.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@json_opt
def evaluate_sketch_cmd(workspace, sketch_dir, adapter, codes, tta, max_queries, no_expand,
                        exclude_source_photo, cache_dir, as_json):
    """Every sketch in SKETCH_DIR/<class>/ queries the photos: mAP, MRR, P@10, latency."""
    res = api.evaluate_sketch(workspace, sketch_dir, adapter=adapter, codes=codes,
                              cache_dir=cache_dir, tta=tta, max_queries=max_queries,
                              expand=not no_expand, exclude_source=exclude_source_photo)
    _emit(res, as_json, lambda r: click.echo(
        f"{r['n_queries']} sketches over {r['n_photos']} photos: mAP {r['map']:.3f}, MRR "
        f"{r['mrr']:.3f}, P@10 {r['p_at_10']:.3f}; {r['ms_per_query_p50']:.1f} ms a query "
        f"(p50); {r['bytes_per_image']:g} bytes per image"))


@cli.command("train-sketch")
@workspace_opt
@click.option("--pairs", required=True, type=click.Path(file_okay=False),
              help="A folder with photo/<class>/<id>.jpg and sketch/<class>/<id>-<n>.png.")
@click.option("--name", default=None, help="Model folder name under W/models.")
@click.option("--classes", default=None, help="Train on these classes only (comma list).")
@seed_opt
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@wait_opt
@progress_opt
@json_opt
def train_sketch_cmd(workspace, pairs, name, classes, seed, cache_dir, wait, progress,
                     as_json):
    """Train a sketch adapter on sketch-photo pairs (never the classes it will search)."""
    res = api.train_sketch(workspace, pairs, name=name,
                           classes=classes.split(",") if classes else None, seed=seed,
                           cache_dir=cache_dir, progress=_progress(progress), wait=wait)
    _emit(res, as_json, lambda r: click.echo(
        f"trained {r['name']} on {r['n_sketches']} sketches and {r['n_photos']} photos of "
        f"{len(r['classes'])} classes in {r['seconds']:.0f}s; held-out pairs mAP "
        f"{r['val_map_before']:.3f} -> {r['val_map_after']:.3f}\n  saved: {r['model']}"))


# -- serve -------------------------------------------------------------------------------------
@cli.command("serve")
@workspace_opt
@click.option("--host", default=defaults.SERVE_HOST, show_default=True,
              help="Address to bind; anything but localhost needs a token.")
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.SERVE_PORT,
              show_default=True)
@click.option("--run", "run_id", type=RUN, default=None,
              help="Cluster run to show (default: the latest).")
@click.option("--model", type=click.Path(file_okay=False), default=None,
              help="A model folder: predictions on the image and search pages.")
@click.option("--allow-edits", is_flag=True,
              help="Allow labelling images and renaming clusters from the browser.")
@click.option("--token", default=None,
              help="Require this token (generated and printed when binding a non-local "
                   "address without one).")
@click.option("--max-upload-mb", type=click.IntRange(1, 1024), default=defaults.MAX_UPLOAD_MB,
              show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def serve_cmd(workspace, host, port, run_id, model, allow_edits, token, max_upload_mb,
              cache_dir):
    """A web app over the workspace: browse clusters, search by image or by drawing, see
    what a new image is."""
    from imgatlas._optional import require
    from imgatlas.serve import create_app, is_loopback, new_token

    uvicorn = require("uvicorn", "serve", "the web app")
    if token is None and not is_loopback(host):
        token = new_token()
    app = create_app(workspace, run=run_id, model=model, allow_edits=allow_edits, token=token,
                     max_upload=max_upload_mb * 2**20, cache_dir=cache_dir)
    shown = "localhost" if is_loopback(host) else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"imgatlas serving {workspace} at {url}" + (" (edits on)" if allow_edits else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")


# -- report ------------------------------------------------------------------------------------
@cli.command()
@workspace_opt
@click.option("--run", "run_id", type=RUN, default=None,
              help="Cluster run to report (default: the latest).")
@click.option("--compare", nargs=2, type=RUN, default=None, metavar="RUN_A RUN_B",
              help="Put two runs side by side instead.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: WORKSPACE/report).")
@click.option("--map", "map_method", type=click.Choice(defaults.MAP_METHODS),
              default=api_default(api.report, "map"), show_default=True,
              help="2-D projection for the map.")
@progress_opt
@json_opt
def report(workspace, run_id, compare, out, map_method, progress, as_json):
    """Write a self-contained HTML report that opens offline in any browser."""
    res = api.report(workspace, out, run=run_id, compare=tuple(compare) if compare else None,
                     map=map_method, progress=_progress(progress))
    _emit(res, as_json, lambda r: click.echo(f"report: {r['index']}"))


# -- run ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", type=click.Path())
@click.option("--workspace", "-w", type=click.Path(file_okay=False), default=None,
              help="Workspace directory (default: DIRECTORY/../<name>.imgatlas).")
@click.option("--labels-from-folders", is_flag=True,
              help="Use folder names as labels: they only score the clustering.")
@click.option("--backbone", default=defaults.BACKBONE, show_default=True,
              help="A backbone name (imgatlas backbones) or hf:ORG/NAME[@REVISION].")
@click.option("--k", "k", default=str(defaults.K), show_default=True,
              help="Number of clusters, or 'auto'.")
@click.option("--k-range", default=None,
              help="LO:HI: the top-level sweep of --k auto [2:30]; groups are split further "
                   "where their parts are clearly separated.")
@seed_opt
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: WORKSPACE/report).")
@click.option("--no-report", is_flag=True, help="Stop after clustering and scoring.")
@click.option("--no-inspect", is_flag=True,
              help="Skip the inspection (near-duplicates, blurry, dark ... images).")
@precision_opt
@click.option("--refit", is_flag=True,
              help=f"Cluster everything again even when at most "
                   f"{defaults.REFIT_GROWTH:.0%} of the images are new or gone since the last "
                   "run (otherwise the new ones join their nearest neighbours' clusters).")
@progress_opt
@json_opt
def run(directory, workspace, labels_from_folders, backbone, k, k_range, seed, report_dir,
        no_report, no_inspect, precision, refit, progress, as_json):
    """The main job: scan, embed, cluster (default pipeline), evaluate, report.

    Reuses whatever the workspace already holds: a second run only does new work.
    """
    res = api.run(directory, workspace, labels_from_folders=labels_from_folders,
                  backbone=backbone, k=_k_option(k),
                  k_range=_k_range(k_range) if k_range else None, seed=seed,
                  report_dir=report_dir, make_report=not no_report,
                  make_inspection=not no_inspect, precision=precision, refit=refit,
                  progress=_progress(progress))

    def human(r):
        _print_scan(r["scan"])
        _print_embed(r["embed"])
        if r["inspection"]:
            _print_inspection(r["inspection"], 0)
        _print_cluster(r["cluster"])
        ev = r["evaluation"]
        if ev:
            click.echo(f"  against folder labels: ACC {ev['acc']:.3f}  NMI {ev['nmi']:.3f}  "
                       f"ARI {ev['ari']:.3f}  purity {ev['purity']:.3f}")
        if r["status"]["failed"]:
            click.echo(f"  {len(r['status']['failed'])} files could not be used: "
                       f"imgatlas status --workspace {r['workspace']}")
        click.echo(f"workspace: {r['workspace']}")
        if r["report"]:
            click.echo(f"report: {r['report']['index']}")

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
    except click.UsageError as e:  # one line, not click's usage block
        cmd = e.ctx.command_path if e.ctx is not None else "imgatlas"
        click.echo(f"Error: {e.format_message()} (see '{cmd} --help')", err=True)
        return e.exit_code
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
        user = as_user_error(e)
        if user is not None:
            click.echo(f"Error: {user}", err=True)
            return user.exit_code
        msg = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"Internal error ({type(e).__name__}: {msg}); rerun with --debug for "
                   "details and please report it.", err=True)
        return 70


if __name__ == "__main__":
    sys.exit(main())
