"""The in-memory form every source produces."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


from ..errors import DataError  # noqa: F401  (re-exported)


@dataclass
class ImageArrays:
    """images: uint8 (N, H, W, 3); labels: int64 (N,); classes: names in label order.

    ``files`` (optional) names each image's source, for backends that read files themselves
    (DALI) and for error messages.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    files: list[str] | None = None
    skipped: list[str] = field(default_factory=list)
    source: str | None = None  # a container file the pixels stay in (an FFCV .beton)
    rows: np.ndarray | None = None  # each sample's row in ``source``

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.images.shape[0]} images but labels of shape {self.labels.shape}")
        self.labels = self.labels.astype(np.int64, copy=False)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"labels must lie in [0, {len(self.classes)}), got [{self.labels.min()}, {self.labels.max()}]")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def decoded(self) -> bool:
        """False for a file listing whose pixels were not loaded (images of shape (N, 0, 0, 3)),
        as the DALI backend reads ImageFolder trees: it decodes the files itself."""
        return self.images.shape[1] > 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray) -> "ImageArrays":
        files = [self.files[i] for i in index] if self.files is not None else None
        rows = (self.rows if self.rows is not None else np.arange(len(self)))[index] if self.source else None
        return ImageArrays(self.images[index], self.labels[index], self.classes, self.mean, self.std, files,
                           source=self.source, rows=rows)


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of all indices in which every prefix is (as nearly as possible) class-balanced.

    Each sample's key is its random rank inside its class divided by the class size; sorting by
    that key interleaves the classes in proportion. Taking the first n gives a stratified sample.
    """
    rng = np.random.default_rng(seed)
    key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        key[idx] = (rng.permutation(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(key, kind="stable")


def split_off(data: ImageArrays, count: int, seed: int) -> tuple[ImageArrays, ImageArrays]:
    """(rest, held_out): a stratified held-out set of ``count`` samples, fixed by ``seed``."""
    if not 0 < count < len(data):
        raise DataError(f"data.val_split: cannot hold out {count} of {len(data)} training images")
    order = stratified_order(data.labels, seed)
    return data.subset(np.sort(order[count:])), data.subset(np.sort(order[:count]))
