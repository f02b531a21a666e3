"""Data-loading backends behind one interface (installed as ``fastkd.pipelines``).

Every backend yields :class:`Batch` objects on the training device: normalised channels_last
images and soft targets (N, K). Build one with :func:`build_pipeline`.
"""
from .batch import Batch
from .spec import AugmentSpec
from .registry import BACKENDS, build_pipeline, require

__all__ = ["Batch", "AugmentSpec", "BACKENDS", "build_pipeline", "require"]
