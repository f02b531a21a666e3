"""Data sets as uint8 image arrays + integer labels, ready for any pipeline backend.

``load_splits(data_cfg)`` returns ``{"train", "val" (optional), "test"}`` :class:`ImageArrays`.
Sources: the bundled CIFAR-10 sample, CIFAR-10/100 python archives, ImageFolder trees.
"""
from .arrays import DataError, ImageArrays
from .loading import DATASETS, load_splits

__all__ = ["DataError", "ImageArrays", "DATASETS", "load_splits"]
