"""Registered classifiers: fine-tuning, linear probing and partial fine-tuning of the MAE encoder."""
from .vit_classifier import ViTClassifier

__all__ = ['ViTClassifier']
