"""Names and caches of Hugging Face models, read without transformers or huggingface_hub.

A model is named ``hf:ORG/NAME[@REVISION]``. Two caches are involved:

- the user's Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
  ``~/.cache/huggingface/hub``), which transformers fills on first use, and where
  ``models--ORG--NAME/refs/REVISION`` holds the commit a branch points to;
- imgatlas' model cache, where the exported graphs live:
  ``backbones/hf/ORG--NAME/COMMIT/`` with ``refs/REVISION`` beside it, the same layout, so
  that copying ``backbones/hf/ORG--NAME`` to an offline machine is all it needs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from imgatlas._paths import cache_dir_or_default
from imgatlas.errors import ConfigError, MissingWeights

PREFIX = "hf:"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelName:
    repo: str  # ORG/NAME
    revision: str  # a branch, a tag or a commit ("main" when not given)

    @property
    def display(self) -> str:
        """``hf:ORG/NAME``, with ``@REVISION`` only when it is not ``main``."""
        rev = "" if self.revision == "main" else f"@{self.revision}"
        return f"{PREFIX}{self.repo}{rev}"

    @property
    def folder(self) -> str:
        return self.repo.replace("/", "--")


def is_hf_name(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_name(name: str) -> ModelName:
    """``hf:ORG/NAME[@REVISION]`` -> :class:`ModelName`; a malformed name is a one-line
    error showing the form."""
    body = name[len(PREFIX):] if is_hf_name(name) else name
    repo, _, revision = body.partition("@")
    if not _REPO.match(repo) or ".." in repo or (revision and not re.match(
            r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", revision)):
        raise ConfigError(f"A Hugging Face backbone is named hf:ORG/NAME or "
                          f"hf:ORG/NAME@REVISION (hf:facebook/dinov2-small). Got {name!r}.")
    return ModelName(repo, revision or "main")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, decided as huggingface_hub decides it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def export_root(name: ModelName, cache_dir: str | os.PathLike[str] | None) -> Path:
    """``<imgatlas cache>/backbones/hf/ORG--NAME``: what to copy to an offline machine."""
    return cache_dir_or_default(cache_dir) / "backbones" / "hf" / name.folder


def known_commit(name: ModelName, cache_dir: str | os.PathLike[str] | None) -> str | None:
    """The commit ``name`` stands for without asking the network: itself when it is one,
    else what the Hugging Face cache's ref says (the user's own cache decides, so a model
    updated there is exported again), else what imgatlas recorded at its export."""
    if _COMMIT.match(name.revision):
        return name.revision
    for refs in (hf_hub_cache() / f"models--{name.folder}" / "refs",
                 export_root(name, cache_dir) / "refs"):
        ref = refs / name.revision
        try:
            commit = ref.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if _COMMIT.match(commit) or commit == "local":
            return commit
    return None


def write_ref(name: ModelName, cache_dir: str | os.PathLike[str] | None, commit: str) -> None:
    """Record the commit ``name``'s revision stands for, where :func:`known_commit` reads it
    (a branch such as ``refs/pr/1`` nests, as in the Hugging Face cache)."""
    ref = export_root(name, cache_dir) / "refs" / name.revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit + "\n", "ascii")


def fetch_hint(name: ModelName) -> str:
    return f"imgatlas backbones fetch {name.display}"


def load_error(e: BaseException, name: ModelName) -> Exception:
    """What a failure of transformers' ``from_pretrained`` means for the user, one line with
    the remedy (its own messages run to a paragraph and name internals)."""
    text = str(e)
    low = text.lower()
    cls = type(e).__name__
    if "gated" in low or cls == "GatedRepoError":
        return MissingWeights(
            f"{name.display} is a gated model: accept its licence on its Hugging Face page, "
            "then log in (hf auth login) or set HF_TOKEN, and run again.")
    if (cls in ("RepositoryNotFoundError", "RevisionNotFoundError")
            or "not a valid model identifier" in low or "is not a valid git identifier" in low
            or "repository not found" in low):
        return MissingWeights(
            f"No model {name.display} on the Hugging Face hub (a private one needs HF_TOKEN); "
            "check the name (imgatlas backbones lists the short names).")
    if ("couldn't connect" in low or "cached files" in low or "offline" in low
            or "connection" in low or cls in ("LocalEntryNotFoundError", "OfflineModeIsEnabled")):
        where = hf_hub_cache() / f"models--{name.folder}"
        return MissingWeights(
            f"{name.display} is not in the Hugging Face cache ({where}) and the hub cannot be "
            f"reached; run '{fetch_hint(name)}' on a connected machine and copy the folder "
            "it names here.")
    first = text.strip().splitlines()[0] if text.strip() else cls
    return MissingWeights(f"Cannot load {name.display}: {first}")
