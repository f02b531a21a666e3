"""``build_pipeline``: backend name -> pipeline object (iterable of Batch, ``set_epoch``, ``len``).

Backends are imported on demand: DALI and FFCV are optional. Options beyond the shared ones
(``engine.pipeline_options`` adds them only for their own backend) go to that backend alone.
"""
from __future__ import annotations

from importlib import import_module

_CLASSES = {"tensor": (".tensor", "TensorPipeline"), "dataloader": (".dataloader", "DataLoaderPipeline"),
            "dali": (".dali", "DaliPipeline"), "ffcv": (".ffcv", "FfcvPipeline")}
BACKENDS = tuple(_CLASSES)


def build_pipeline(backend: str, data, spec, **kwargs):
    if backend not in _CLASSES:
        raise ValueError(f"data.backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    module, name = _CLASSES[backend]
    return getattr(import_module(module, __package__), name)(data, spec, **kwargs)
