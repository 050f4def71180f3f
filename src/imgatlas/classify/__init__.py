"""Classifiers: train on labelled images (heads on cached features, partial fine-tuning,
a small CNN baseline), predict with calibrated probabilities and an honest "unknown",
score, compare (McNemar), and spread a few labels over the collection."""

from imgatlas._lazy import lazy_exports
from imgatlas.classify._heads import LogisticHead, MLPHead, TemperatureScaler
from imgatlas.classify._model import Model, open_model, write_model_folder

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["estimate_workspace", "propagate_workspace", "suggest_workspace"],
                     "._label_stage"),
    **dict.fromkeys(["compare", "predict_files", "score_model"], "._predict"),
    **dict.fromkeys(["train_workspace"], "._train"),
    **dict.fromkeys(["build_tail"], "._lite_torch"),
    **dict.fromkeys(["PROPAGATORS"], "._propagate"),
    **dict.fromkeys(["Labels", "resolve_labels"], "._labels"),
    **dict.fromkeys(["pairs_with_second"], "._features"),
})

__all__ = [
    "Labels",
    "LogisticHead",
    "MLPHead",
    "PROPAGATORS",
    "Model",
    "TemperatureScaler",
    "build_tail",
    "compare",
    "estimate_workspace",
    "open_model",
    "pairs_with_second",
    "predict_files",
    "propagate_workspace",
    "resolve_labels",
    "score_model",
    "suggest_workspace",
    "train_workspace",
    "write_model_folder",
]
