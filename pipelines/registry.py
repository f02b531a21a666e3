"""The backends by name: adding one is its file plus one line in ``_CLASSES``.

``build_pipeline(name, data, spec, train=..., layout=..., options=...)`` builds one. Backend
modules import their optional package (DALI, FFCV) only when a pipeline is built or
``require`` is called, so listing them and reading their ``Options`` costs nothing extra.
"""
from __future__ import annotations

import dataclasses
from importlib import import_module

from fastkd.errors import ConfigError

from .base import Layout

_CLASSES = {"tensor": ("fastkd.pipelines.tensor", "TensorPipeline"),
            "dataloader": ("fastkd.pipelines.dataloader", "DataLoaderPipeline"),
            "dali": ("fastkd.pipelines.dali", "DaliPipeline"),
            "ffcv": ("fastkd.pipelines.ffcv", "FfcvPipeline")}
BACKENDS = tuple(_CLASSES)


def backend_class(name: str) -> type:
    if name not in _CLASSES:
        raise ConfigError(f"data.backend: unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    module, cls = _CLASSES[name]
    return getattr(import_module(module), cls)


def backend_reads(name: str) -> str:
    """The form of source the backend takes: "arrays", "files" or "beton"."""
    return backend_class(name).reads


def training_batches_carry_index(data_cfg) -> bool:
    """Whether a run's training batches name their samples (``Batch.index``), as a teacher cache
    lookup needs: a backend that lets its own library choose the order may not know them."""
    cls = backend_class(data_cfg.backend)
    return cls.indexes_training_batches(getattr(data_cfg, data_cfg.backend, cls.Options()))


def options_classes() -> dict[str, type]:
    """Each backend's options dataclass (``data.<name>.*`` in the config)."""
    return {name: backend_class(name).Options for name in BACKENDS}


def require(name: str) -> None:
    """Raise MissingDependency (with the install hint) if the backend's package is absent."""
    backend_class(name).require()


def build_pipeline(name: str, data, spec, *, train: bool, layout=None, options=None, **kwargs):
    """A backend's pipeline. ``layout`` (a Layout) may be given as its fields instead
    (device, seed, batch_size, process_index, num_processes, ...); keyword arguments naming the
    backend's options go to ``options``, so tests and scripts can write ``order="random"``."""
    cls = backend_class(name)
    option_names = {f.name for f in dataclasses.fields(cls.Options)}
    own = {k: kwargs.pop(k) for k in list(kwargs) if k in option_names}
    if options is None:
        options = cls.Options(**own)
    elif own:
        options = dataclasses.replace(options, **own)
    if layout is None:
        layout = Layout.of(**kwargs)
    elif kwargs:
        layout = dataclasses.replace(layout, **kwargs)
    return cls(data, spec, train=train, layout=layout, options=options)
