"""Classifiers: train on labelled images (heads on cached features, partial fine-tuning,
a small CNN baseline), predict with calibrated probabilities and an honest "unknown",
score, compare (McNemar), and spread a few labels over the collection."""

from imgatlas.classify._heads import LogisticHead, MLPHead, TemperatureScaler
from imgatlas.classify._model import Model, open_model

__all__ = ["LogisticHead", "MLPHead", "Model", "TemperatureScaler", "open_model"]
