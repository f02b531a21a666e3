"""Distillation methods by name (``distill.method``): adding one is its file plus one line in
``registry._CLASSES`` (or ``register`` at run time). See docs/architecture.md, "Add a KD method"."""
from .base import KDMethod
from .registry import METHODS, available, method_class, method_for, options_classes, register

__all__ = ["KDMethod", "METHODS", "available", "method_class", "method_for", "options_classes", "register"]
