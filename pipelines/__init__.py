"""Data-loading backends behind one interface (installed as ``fastkd.pipelines``).

Every backend yields :class:`Batch` objects on the training device: normalised channels_last
images and soft targets (N, K). Build one with :func:`build_pipeline`.
"""
from .batch import Batch
from .spec import AugmentSpec
from .base import Layout
from .registry import BACKENDS, backend_class, backend_reads, build_pipeline, require

__all__ = ["Batch", "AugmentSpec", "BACKENDS", "build_pipeline", "require", "Layout", "backend_class", "backend_reads"]
