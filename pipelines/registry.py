"""``build_pipeline``: backend name -> pipeline object (iterable of Batch, ``set_epoch``, ``len``)."""
from __future__ import annotations

BACKENDS = ("tensor", "dataloader", "dali", "ffcv")


def build_pipeline(backend: str, data, spec, **kwargs):
    if backend == "tensor":
        from .tensor import TensorPipeline
        for key in ("num_workers", "decode", "image_size", "order", "os_cache", "batches_ahead"):
            kwargs.pop(key, None)
        return TensorPipeline(data, spec, **kwargs)
    if backend == "dataloader":
        from .dataloader import DataLoaderPipeline
        for key in ("decode", "image_size", "order", "os_cache", "batches_ahead"):
            kwargs.pop(key, None)
        return DataLoaderPipeline(data, spec, **kwargs)
    if backend == "ffcv":
        from .ffcv import FfcvPipeline
        kwargs.pop("decode", None)
        return FfcvPipeline(data, spec, **kwargs)
    if backend == "dali":
        from .dali import DaliPipeline
        return DaliPipeline(data, spec, **kwargs)
    raise ValueError(f"data.backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
