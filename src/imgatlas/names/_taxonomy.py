"""The ImageNet-1k classes and the WordNet nouns above them (``imagenet_wordnet.json``,
written by ``scripts/make_imagenet_names.py``): names, synonyms, parents, and which classes
fall under each node."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from imgatlas._package_data import package_file

# Nodes too general to name anything a person would call a group of photos: the top of the
# noun hierarchy (WordNet's unique beginners and their first levels).
TOO_GENERAL = frozenset({
    "n00001740",  # entity
    "n00001930",  # physical entity
    "n00002684",  # object, physical object
    "n00003553",  # whole, unit
    "n00004258",  # living thing, animate thing
    "n00004475",  # organism, being
    "n00021939",  # artifact, artefact
    "n00002137",  # abstraction
    "n03575240",  # instrumentality, instrumentation
    "n00019128",  # natural object
    "n09287968",  # geological formation
    "n00020827",  # matter
    "n00021265",  # food, nutrient
    "n03129123",  # creation
    "n04341686",  # structure, construction
    "n03563967",  # implement
    "n03094503",  # container
    "n03183080",  # device
    "n01466257",  # chordate
    "n01471682",  # vertebrate, craniate
    "n00015388",  # animal, animate being, beast, brute, creature, fauna
    "n00027167",  # location
    "n00031264",  # group, grouping
    "n07566340",  # foodstuff, food product
    "n00007347",  # cause, causal agent
    "n00007846",  # person (few ImageNet classes; a wrong name for most photos of people)
    "n03122748",  # covering
    "n03076708",  # commodity, trade good, good
})


@dataclass(frozen=True)
class Node:
    wnid: str
    words: tuple[str, ...]  # synonyms, the first the name shown
    parents: tuple[str, ...]
    depth: int  # the longest way up to 'entity': higher is more specific
    common: bool  # one of its words was tagged in WordNet's SemCor corpus

    @property
    def name(self) -> str:
        return self.words[0]


class Taxonomy:
    """Class index <-> WordNet nodes, ancestors and descendants, words -> nodes."""

    def __init__(self, data: dict) -> None:
        self.classes: list[str] = data["classes"]
        self.display: list[str] = data["display"]  # short names of the 1,000 classes
        self.nodes = {w: Node(w, tuple(n["words"]), tuple(n["parents"]), n["depth"],
                              n["common"]) for w, n in data["nodes"].items()}
        self.plurals: dict[str, str] = {k.lower(): v.lower() for k, v in data["plurals"].items()}
        self.index = {w: i for i, w in enumerate(self.classes)}
        ancestors: list[frozenset[str]] = []
        for w in self.classes:
            seen, todo = set(), [w]
            while todo:
                x = todo.pop()
                if x not in seen:
                    seen.add(x)
                    todo += self.nodes[x].parents
            ancestors.append(frozenset(seen))
        self.ancestors = ancestors  # per class: itself and every node above it
        under: dict[str, list[int]] = {}
        for i, anc in enumerate(ancestors):
            for a in anc:
                under.setdefault(a, []).append(i)
        self.under = {w: np.array(v, dtype=np.int64) for w, v in under.items()}
        words: dict[str, list[str]] = {}
        for n in self.nodes.values():
            for x in n.words:
                words.setdefault(x.lower(), []).append(n.wnid)
        self.words = words

    def nameable(self, wnid: str) -> bool:
        """Can ``wnid`` name a group of photos? Not when too general, nor when it is a
        taxonomist's word that nobody says (an uncommon word over many classes: placental,
        diapsid; an uncommon word over a few, like camel or bulldog, is fine)."""
        if wnid in TOO_GENERAL:
            return False
        node = self.nodes[wnid]
        return wnid in self.index or node.common or len(self.under.get(wnid, ())) <= 8

    def name_of(self, wnid: str) -> str:
        i = self.index.get(wnid)
        return self.display[i] if i is not None else self.nodes[wnid].name

    def lookup(self, text: str) -> list[str]:
        """The nodes a word or phrase names (synonyms and plurals included), most specific
        first; empty when it names none."""
        q = " ".join(text.lower().replace("_", " ").split())
        for candidate in _singulars(q, self.plurals):
            if candidate in self.words:
                return sorted(set(self.words[candidate]),
                              key=lambda w: (-len(self.under.get(w, ())) == 0,
                                             -self.nodes[w].depth, w))
        return []

    def close_words(self, text: str, n: int = 5) -> list[str]:
        return difflib.get_close_matches(text.lower().strip(), list(self.words), n=n,
                                         cutoff=0.6)


def _singulars(q: str, plurals: dict[str, str]) -> list[str]:
    """``q`` and what it is the plural of: geese -> goose, puppies -> puppy, dogs -> dog."""
    out = [q]
    if q in plurals:
        out.append(plurals[q])
    head, _, last = q.rpartition(" ")
    pre = f"{head} " if head else ""
    for suffix, repl in (("ies", "y"), ("ves", "f"), ("es", ""), ("s", "")):
        if last.endswith(suffix) and len(last) > len(suffix) + 1:
            out.append(pre + last[: -len(suffix)] + repl)
    return out


@cache
def taxonomy() -> Taxonomy:
    """The shipped taxonomy (read once per process)."""
    text = package_file("names/imagenet_wordnet.json").read_text("utf-8")
    return Taxonomy(json.loads(text))
