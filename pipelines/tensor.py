"""The ``tensor`` backend: the whole uint8 data set resident on the training device.

Shuffling is a device permutation, per-sample transforms and mixing are batched device ops
(``fastkd.kernels``); nothing goes back to the host. On a CPU-only machine the same code runs on
the CPU. CIFAR-10 train is 150 MiB as uint8: it fits on any GPU.
"""
from __future__ import annotations

import torch

from fastkd.seeding import generator

from .batch import Batch, augment_uint8_batch
from .base import ShardedPipeline


class TensorPipeline(ShardedPipeline):
    def __init__(self, data, spec, *, num_workers: int | None = None, **kwargs):
        # num_workers is accepted for a uniform signature: there are no loader workers here
        super().__init__(data, spec, index_device=kwargs["device"], **kwargs)
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.from_numpy(data.labels).to(self.device)
        self.mean, self.std = data.mean, data.std

    def __iter__(self):
        idx = self._indices()
        # augmentation randomness differs per process and epoch, and is independent of shuffling
        gen = generator(self.seed, "augment", self.epoch, self.rank, device=self.device)
        for a, b in self._slices(len(idx)):
            i = idx[a:b]
            x, y = augment_uint8_batch(self.images[i], self.labels[i], self.spec, num_classes=self.num_classes,
                                       mean=self.mean, std=self.std, train=self.train, generator=gen,
                                       dtype=self.dtype, channels_last=self.channels_last)
            yield Batch(x, y, self.labels[i], i)
