"""The search-code families, one small class each, registered in ``CODES`` on import."""

from imgatlas.index.families import _faiss, _umap  # noqa: F401  (registers)
from imgatlas.index.families._base import CodeFamily, register_family
from imgatlas.index.families._learned import LearnedITQCodes, itq_projection

__all__ = ["CodeFamily", "LearnedITQCodes", "itq_projection", "register_family"]
