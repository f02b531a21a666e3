"""``build_pipeline``: backend name -> pipeline object (iterable of Batch, ``set_epoch``, ``len``).

Backends are imported on demand: DALI and FFCV are optional. Options beyond the shared ones
(``engine.pipeline_options`` adds them only for their own backend) go to that backend alone.
"""
from __future__ import annotations

from importlib import import_module

_CLASSES = {"tensor": (".tensor", "TensorPipeline"), "dataloader": (".dataloader", "DataLoaderPipeline"),
            "dali": (".dali", "DaliPipeline"), "ffcv": (".ffcv", "FfcvPipeline")}
BACKENDS = tuple(_CLASSES)
# the optional package each backend needs, checked before any data is read
_REQUIRES = {"dali": ("fastkd.pipelines.dali", "_dali"), "ffcv": ("fastkd.data.beton", "ffcv_module")}


def require(backend: str) -> None:
    """Raise MissingDependency (with the install hint) if ``backend``'s package is absent."""
    if backend in _REQUIRES:
        module, fn = _REQUIRES[backend]
        getattr(import_module(module), fn)()


def build_pipeline(backend: str, data, spec, **kwargs):
    if backend not in _CLASSES:
        raise ValueError(f"data.backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    module, name = _CLASSES[backend]
    return getattr(import_module(module, __package__), name)(data, spec, **kwargs)
