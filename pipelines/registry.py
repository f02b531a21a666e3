"""``build_pipeline``: backend name -> pipeline object (iterable of Batch, ``set_epoch``, ``len``)."""
from __future__ import annotations

BACKENDS = ("tensor", "dataloader")


def build_pipeline(backend: str, data, spec, **kwargs):
    if backend == "tensor":
        from .tensor import TensorPipeline
        kwargs.pop("num_workers", None)
        return TensorPipeline(data, spec, **kwargs)
    if backend == "dataloader":
        from .dataloader import DataLoaderPipeline
        return DataLoaderPipeline(data, spec, **kwargs)
    raise ValueError(f"data.backend: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
