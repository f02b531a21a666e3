"""The batch contract every backend delivers."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """images: (N, C, H, W) normalised, channels_last, on the device; targets: (N, K) soft labels.

    ``labels`` are the hard labels (before mixing) and ``index`` the data-set indices of the
    samples, so evaluation can save per-image outputs and tests can check coverage.
    """

    images: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.images, self.targets, self.labels, self.index)))
