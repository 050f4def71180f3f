"""Write ``src/imgatlas/names/vocabulary.json``: the open vocabulary that clusters of a CLIP or
SigLIP store are named from (``imgatlas.names``), about 7,000 concrete nouns, six times
ImageNet-1k's classes.

From WordNet 3.0 (Princeton University; its licence allows redistribution with the notice,
kept in the file): every noun synset under ``physical_entity`` whose senses occur at least
once in the SemCor sense-tagged corpus (``cntlist.rev``: the everyday senses, not the rare
ones), every ImageNet-1k class, and their hypernyms, less proper nouns (instances and
capitalised lemmas). Each concept is named by its first lemma; where lemmas collide the
more frequent sense keeps the name.

    apt-get install wordnet-base   # /usr/share/wordnet
    python scripts/make_vocabulary.py [--wordnet /usr/share/wordnet]

Deterministic: a rerun shows no diff.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "imgatlas" / "names" / "vocabulary.json"
IMAGENET = ROOT / "src" / "imgatlas" / "names" / "imagenet_wordnet.json"
PHYSICAL_ENTITY = "n00001930"
# glosses of words that insult or shock (WordNet marks few of them with a usage domain)
RUDE = re.compile(r"\b(obscen|offensive|vulgar|disparag|derogator|slur|slang|insult|"
                  r"contempt|disliked|term for)", re.I)
# too general to name a cluster of pictures by
TOO_GENERAL = {"n00001930", "n00002684", "n00003553", "n00004258", "n00004475", "n00021939",
               "n00027167", "n03575240", "n00019613", "n00020827", "n03129123", "n04564698",
               "n00007846", "n03265032"}
NOTICE = ("WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
          "THIS SOFTWARE AND DATABASE IS PROVIDED \"AS IS\" AND PRINCETON UNIVERSITY MAKES NO "
          "REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. The name of Princeton "
          "University or Princeton may not be used in advertising or publicity pertaining to "
          "distribution of the software and/or database. Permission to use, copy, modify and "
          "distribute this software and database and its documentation for any purpose and "
          "without fee or royalty is hereby granted, provided that this notice appears in "
          "all copies.")


def read(wordnet: Path) -> dict[str, dict]:
    counts = {}
    for line in (wordnet / "cntlist.rev").read_text("latin-1").splitlines():
        key, _, n = line.split()
        counts[key] = int(n)
    nouns = {}
    for line in (wordnet / "data.noun").read_text("latin-1").splitlines(keepends=True):
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        head = head.split()
        offset, lexfile, n = head[0], int(head[1]), int(head[3], 16)
        words = [(head[4 + 2 * k], int(head[5 + 2 * k], 16)) for k in range(n)]
        rest = head[4 + 2 * n:]
        ptrs = [(rest[1 + 4 * k], rest[2 + 4 * k]) for k in range(int(rest[0]))]
        nouns[f"n{offset}"] = {
            "rude": bool(RUDE.search(gloss)),
            "words": [w.split("(")[0].replace("_", " ") for w, _ in words],
            "parents": [f"n{o}" for p, o in ptrs if p in ("@", "@i")],
            "instance": any(p == "@i" for p, _ in ptrs),
            "usage": [f"n{o}" for p, o in ptrs if p == ";u"],
            "count": sum(counts.get(f"{w.lower()}%1:{lexfile:02d}:{lid:02d}::", 0)
                         for w, lid in words),
        }
    return nouns


def ancestors(nouns: dict[str, dict], wnid: str, memo: dict[str, set[str]]) -> set[str]:
    if wnid not in memo:
        memo[wnid] = set()
        out = {wnid}
        for p in nouns[wnid]["parents"]:
            out |= ancestors(nouns, p, memo)
        memo[wnid] = out
    return memo[wnid]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    args = ap.parse_args()
    sys.setrecursionlimit(10_000)
    nouns = read(args.wordnet)
    memo: dict[str, set[str]] = {}
    imagenet = json.loads(IMAGENET.read_text())
    classes = [c["wnid"] if isinstance(c, dict) else c for c in imagenet.get("classes", [])]
    wanted = {w for w, s in nouns.items() if s["count"] >= 1 and not s["instance"]
              and PHYSICAL_ENTITY in ancestors(nouns, w, memo)}
    for c in classes:
        if c in nouns:
            wanted |= ancestors(nouns, c, memo) - {"n00001740"}
    # words WordNet marks as obscene, vulgar, disparaging or slurs never name a cluster
    offensive = {w for w, s in nouns.items()
                 if set(s["words"]) & {"obscenity", "vulgarism", "disparagement",
                                        "ethnic slur", "derogation", "profanity"}}
    wanted = {w for w in wanted
              if not set(nouns[w]["usage"]) & offensive and not nouns[w]["rude"]}
    best: dict[str, tuple[int, str]] = {}
    for w in sorted(wanted - TOO_GENERAL):
        name = nouns[w]["words"][0]
        if not name or name[0].isupper() or any(ch.isdigit() for ch in name):
            continue
        score = nouns[w]["count"] + (1000 if w in classes else 0)
        if name not in best or score > best[name][0]:
            best[name] = (score, w)
    concepts = [{"name": n, "wnid": w} for n, (_, w) in sorted(best.items())]
    OUT.write_text(json.dumps({
        "source": "WordNet 3.0 nouns under physical_entity seen in SemCor, ImageNet-1k "
                  "classes and their hypernyms (scripts/make_vocabulary.py)",
        "licence": NOTICE, "concepts": concepts}, indent=0, ensure_ascii=False) + "\n")
    print(f"{len(concepts)} concepts -> {OUT}")


if __name__ == "__main__":
    main()
