"""The ``tensor`` backend: the whole uint8 data set resident on the training device.

Shuffling is a device permutation; every transform runs in the shared finishing path as batched
device ops (``fastkd.kernels``); nothing goes back to the host. On a CPU-only machine the same
code runs on the CPU. CIFAR-10 train is 150 MiB as uint8: it fits on any GPU.
"""
from __future__ import annotations

import torch

from .base import ShardedPipeline


class TensorPipeline(ShardedPipeline):
    reads = "arrays"

    def __init__(self, data, spec, **kwargs):
        super().__init__(data, spec, **kwargs)
        self._check_fits()
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.from_numpy(data.labels).to(self.device)

    def _check_fits(self) -> None:
        """The whole uint8 set is copied to the device (on a CPU: copied once more in host memory)."""
        from fastkd.data.memory import available_host_bytes, check_fits
        needed = self.data.images.nbytes
        if self.device.type == "cuda":
            free = torch.cuda.mem_get_info(self.device)[0]
            check_fits(needed, what=f"the tensor backend's copy of {len(self.data):,} images", where=str(self.device),
                       available=free)
        else:
            check_fits(needed, what=f"the tensor backend's copy of {len(self.data):,} images", where="host",
                       available=available_host_bytes())

    def _index_device(self):
        return self.device  # the permutation is drawn where the data is

    def __iter__(self):
        idx = self._indices()
        gen = self._device_generator()
        for a, b in self._slices(len(idx)):
            i = idx[a:b]
            yield self._finish(self.images[i], self.labels[i], i, gen)
