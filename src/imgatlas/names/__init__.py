"""Names: each image's ImageNet classes (from its stored features through the backbone's own
classifier), lifted through WordNet into suggested cluster names, tags and text search.

The taxonomy ships as ``imagenet_wordnet.json``, written by ``scripts/make_imagenet_names.py``
from WordNet 3.0 and the ImageNet-1k class list.
"""

from imgatlas.names._clusters import ClusterName, accept_suggestions, cluster_names
from imgatlas.names._search import text_search
from imgatlas.names._suggest import COVERAGE, MEMBER_MASS, Suggestion, suggest
from imgatlas.names._tags import TOP_K, class_head, describe, ensure_tags, image_tags
from imgatlas.names._taxonomy import Taxonomy, taxonomy

__all__ = ["COVERAGE", "MEMBER_MASS", "TOP_K", "ClusterName", "Suggestion", "Taxonomy",
           "accept_suggestions", "class_head", "cluster_names", "describe", "ensure_tags",
           "image_tags", "suggest", "taxonomy", "text_search"]
