"""Name -> constructor registry behind ``fastkd.models.create``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return wrap


def _load_zoo() -> None:
    # imported for their @register side effects
    from . import alexnet, lenet, resnet, vgg, wrn  # noqa: F401


def available() -> list[str]:
    _load_zoo()
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build model ``name`` with a ``num_classes``-way head; unknown names list the known ones."""
    _load_zoo()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    model = _REGISTRY[name](num_classes=num_classes, **kwargs)
    model.fastkd_name = name
    model.num_classes = num_classes
    return model
