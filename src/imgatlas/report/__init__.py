"""The report stage: a recorded clustering run -> a self-contained HTML folder."""

from imgatlas._lazy import lazy_exports

# Nothing is imported up front: the report's thumbnail process needs only ._thumbs and
# ._figures, not the clustering stack behind ._report (1.2 s of imports in every report).
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["write_comparison", "write_report"], "._report"),
    **dict.fromkeys(["clustering_space", "grown_space", "map_coordinates"], "._layout"),
    **dict.fromkeys(["make_thumbnail", "thumb_dir", "thumb_media_type", "thumb_name"],
                    "._thumbs"),
})

__all__ = [
    "clustering_space",
    "grown_space",
    "make_thumbnail",
    "map_coordinates",
    "thumb_dir",
    "thumb_media_type",
    "thumb_name",
    "write_comparison",
    "write_report",
]
