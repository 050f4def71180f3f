"""Suggested cluster names and text search on the dev sets.

For each set: embed, cluster with k = the number of classes (default pipeline), suggest a
name for each cluster, and compare it with the cluster's majority folder label mapped to
WordNet (Imagenette's folders are ImageNet classes; the others' names are looked up, and a
label WordNet does not know is not scored):

- *class or parent*: the name is the majority's node or its direct WordNet parent (what the
  issue counts), or a node under it (more specific: a tiger beetle in a beetle cluster);
- *coarser*: an ancestor further up (true, less useful);
- *unrelated*: neither: a wrong name.

Text search: for each class that WordNet knows, the share of the top 20 for its name that
are that class; for Imagenette and Sketchy, also a parent word's top 50.

    python benchmarks/bench_names.py [--sets imagenette sketchy/photo cifar10 clothing rooms]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, preamble, write_section  # noqa: E402

IMAGENETTE = {"cassette_player": "n02979186", "chain_saw": "n03000684",
              "church": "n03028079", "english_springer": "n02102040",
              "french_horn": "n03394916", "garbage_truck": "n03417042",
              "gas_pump": "n03425413", "golf_ball": "n03445777", "parachute": "n03888257",
              "tench": "n01440764"}
PARENT_WORDS = {"imagenette": ["dog", "fish", "truck", "musical instrument"],
                "sketchy/photo": ["dog", "bird", "insect", "vehicle", "fruit"]}


def label_node(ds: str, label: str, tax) -> str | None:
    if ds == "imagenette":
        return IMAGENETTE[label]
    nodes = tax.lookup(label.replace("_", " ").split("(")[0].strip())
    return nodes[0] if nodes else None


def ancestors(tax, w: str) -> set[str]:
    seen, todo = set(), [w]
    while todo:
        x = todo.pop()
        if x not in seen:
            seen.add(x)
            todo += tax.nodes[x].parents
    return seen


def evaluate(ds: str, ws: Path) -> dict:
    from imgatlas import api
    from imgatlas.names import taxonomy

    tax = taxonomy()
    n_cls = api.status(ws)["labels"]
    run = api.cluster(ws, k=n_cls, reuse=True)["run_id"]
    _, _, rows = api.load_features(ws)
    label_of = {r["id"]: r["label"] for r in rows}
    from imgatlas.store import Workspace

    with Workspace.open(ws) as w:
        ids, clusters, labels, _ = w.assignments(run)
    counts = collections.Counter()
    detail = []
    for r in api.clusters(ws, run):
        members = ids[clusters == r["cluster"]]
        maj, n = collections.Counter(label_of[int(i)] for i in members).most_common(1)[0]
        node = label_node(ds, maj, tax)
        name = r["suggested_name"]
        wnid = None
        if name is not None:
            found = [x for x in tax.lookup(name) if x in tax.under]
            wnid = found[0] if found else None
        if name is None:
            verdict = "no name"
        elif node is None or wnid is None:
            verdict = "not scored"
        elif wnid == node or wnid in tax.nodes[node].parents or node in ancestors(tax, wnid):
            verdict = "class or parent"
        elif wnid in ancestors(tax, node):
            verdict = "coarser"
        else:
            verdict = "unrelated"
        counts[verdict] += 1
        detail.append((maj, round(n / len(members), 2), name, verdict))
    search = []
    for label in sorted(set(labels) - {None}):
        node = label_node(ds, label, tax)
        if node is None:
            continue
        word = tax.nodes[node].name if ds != "imagenette" else tax.name_of(node)
        try:
            hits = api.search(ws, text=word, k=20)[0]["results"]
        except Exception:  # noqa: BLE001 - a word the taxonomy reads otherwise
            continue
        got = [label_of[h["id"]] == label for h in hits]
        search.append((word, float(np.mean(got)) if got else 0.0))
    parents = []
    for word in PARENT_WORDS.get(ds, []):
        wn = tax.lookup(word)[0]
        under = {lab for lab in set(labels) - {None}
                 if (n := label_node(ds, lab, tax)) is not None and wn in ancestors(tax, n)}
        if not under:
            continue
        hits = api.search(ws, text=word, k=50)[0]["results"]
        parents.append((word, sorted(under), float(np.mean(
            [label_of[h["id"]] in under for h in hits])) if hits else 0.0))
    return {"counts": dict(counts), "n": len(detail), "detail": detail, "search": search,
            "parents": parents}


def main() -> None:
    from imgatlas import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+",
                    default=["imagenette", "sketchy/photo", "cifar10", "clothing", "rooms"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_names_"))
    out = {}
    for ds in args.sets:
        ws = tmp / ds.replace("/", "_")
        api.scan(SHARED / ds, ws, labels_from_folders=True)
        api.embed(ws)
        out[ds] = evaluate(ds, ws)
        print(ds, out[ds]["counts"], flush=True)
    lines = preamble("numpy")
    lines += ["Each dev set clustered with k = its number of classes (default pipeline, seed "
              "0); each cluster's suggested name against its majority folder label in "
              "WordNet. Dev data: the rule's thresholds (more than half the members, 30 % "
              "of a member's probability) were chosen on these sets.", "",
              "| set | clusters | class or parent | coarser | unrelated | no name | not "
              "scored |", "|---|---|---|---|---|---|---|"]
    for ds, r in out.items():
        c = r["counts"]
        lines.append(f"| {ds} | {r['n']} | {c.get('class or parent', 0)} | "
                     f"{c.get('coarser', 0)} | {c.get('unrelated', 0)} | "
                     f"{c.get('no name', 0)} | {c.get('not scored', 0)} |")
    lines += ["", "Text search, share of the top 20 for a class's word that are that class "
                  "(classes WordNet knows), and of the top 50 for a parent word that are "
                  "under it:", "", "| set | class words | mean top-20 precision | ≥ 0.9 | "
                  "parent words (top-50 precision) |", "|---|---|---|---|---|"]
    for ds, r in out.items():
        if not r["search"]:
            continue
        p = [x for _, x in r["search"]]
        par = ", ".join(f"{w} {x:.2f}" for w, _, x in r["parents"]) or "–"
        lines.append(f"| {ds} | {len(p)} | {np.mean(p):.3f} | {sum(x >= 0.9 for x in p)} "
                     f"| {par} |")
    lines += ["", "Names given (majority label, its share, suggested name, verdict):", ""]
    for ds, r in out.items():
        lines.append(f"- {ds}: " + "; ".join(f"{m} {s:.0%} → {n or '—'} ({v})"
                                              for m, s, n, v in r["detail"]))
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", "Cluster names and text search "
                      "(dev sets)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
