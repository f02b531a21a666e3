"""The ``tensor`` backend: the whole uint8 data set resident on the training device.

The epoch's order (drawn on the host, as every backend draws it) is copied to the device once per
epoch; every transform runs in the shared finishing path as batched device ops
(``fastkd.kernels``); nothing goes back to the host. On a CPU-only machine the same code runs on
the CPU, on the decoded arrays themselves (no copy). CIFAR-10 train is 150 MiB as uint8: it fits
on any GPU.
"""
from __future__ import annotations

import torch

from fastkd.data.memory import check_fits

from .base import ShardedPipeline


class TensorPipeline(ShardedPipeline):
    reads = "arrays"

    def __init__(self, data, spec, **kwargs):
        super().__init__(data, spec, **kwargs)
        self._check_fits()
        # (N, H, W, C) as decoded, copied as it is and viewed as (N, C, H, W): that view is the
        # channels_last layout, so no NCHW copy is made on the host or the device
        self.images = torch.from_numpy(data.images).to(self.device).permute(0, 3, 1, 2)
        self.labels = torch.from_numpy(data.labels).to(self.device)

    def _check_fits(self) -> None:
        """The whole uint8 set is copied to the device (on a CPU it is used where it is)."""
        if self.device.type == "cuda":
            free = torch.cuda.mem_get_info(self.device)[0]
            check_fits(self.data.images.nbytes, what=f"the tensor backend's copy of {len(self.data):,} images",
                       where=str(self.device), available=free)

    def __iter__(self):
        idx = self._indices().to(self.device)  # one copy per epoch
        gen = self._device_generator()
        for a, b in self._slices(len(idx)):
            i = idx[a:b]
            yield self._finish(self.images[i], self.labels[i], i, gen)
