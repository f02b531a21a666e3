"""The distillation methods by name, built like the backend registry (fastkd.pipelines.registry)."""
from __future__ import annotations

import dataclasses
from importlib import import_module

from ..errors import ConfigError
from ..extensions import ExtensionTable

_CLASSES = ExtensionTable("distill.method", {"kd": ("fastkd.distill.kd", "HintonKD"),
                                              "dkd": ("fastkd.distill.dkd", "DecoupledKD"),
                                              "lskd": ("fastkd.distill.lskd", "StandardisedKD")})
METHODS = _CLASSES.built_in  # available() adds those registered at run time


def available() -> tuple[str, ...]:
    return tuple(_CLASSES)


def register(name: str, cls: type) -> None:
    """Add a method at run time (a plugin, a test). Its options become ``distill.<name>.*`` in
    configs built after this call."""
    _CLASSES.add(name, cls)
    cls.name = name


def unregister(name: str) -> None:
    _CLASSES.remove(name)


def method_class(name: str) -> type:
    if name not in _CLASSES:
        raise ConfigError(f"distill.method: invalid value {name!r}; allowed: {', '.join(available())}")
    entry = _CLASSES[name]
    if isinstance(entry, tuple):
        module, cls = entry
        return getattr(import_module(module), cls)
    return entry


def options_classes() -> dict[str, type]:
    """Each method's options dataclass (``distill.<name>.*`` in the config), those with any."""
    return {name: method_class(name).Options for name in available()
            if dataclasses.fields(method_class(name).Options)}


def method_for(distill_cfg):
    """The configured method, with its options section from the config."""
    cls = method_class(distill_cfg.method)
    return cls(distill_cfg, getattr(distill_cfg, distill_cfg.method, None))
