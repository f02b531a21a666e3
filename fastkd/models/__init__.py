"""Model zoo with one contract: ``forward(x)`` -> logits, ``features(x)`` -> penultimate features.

    >>> from fastkd import models
    >>> net = models.create("resnet18", num_classes=10)
"""
from .registry import available, create, register

__all__ = ["available", "create", "register"]
