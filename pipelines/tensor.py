"""The ``tensor`` backend: the whole uint8 data set resident on the training device.

Shuffling is a device permutation, per-sample transforms and mixing are batched device ops
(``fastkd.kernels``); nothing goes back to the host. On a CPU-only machine the same code runs on
the CPU. CIFAR-10 train is 150 MiB as uint8: it fits on any GPU.
"""
from __future__ import annotations

import torch

from fastkd.seeding import generator

from .batch import Batch, augment_uint8_batch
from .sharding import batch_slices, shard_indices


class TensorPipeline:
    def __init__(self, data, spec, *, train: bool, batch_size: int, device, seed: int,
                 process_index: int = 0, num_processes: int = 1, drop_last: bool | None = None,
                 dtype=torch.float32, channels_last: bool = True):
        self.device = torch.device(device)
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.from_numpy(data.labels).to(self.device)
        self.num_classes = data.num_classes
        self.mean, self.std = data.mean, data.std
        self.spec, self.train, self.batch_size, self.seed = spec, train, batch_size, seed
        self.rank, self.world = process_index, num_processes
        self.drop_last = train if drop_last is None else drop_last
        self.dtype, self.channels_last = dtype, channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        return shard_indices(len(self.labels), epoch=self.epoch, seed=self.seed, rank=self.rank, world=self.world,
                             shuffle=self.train, device=self.device)

    @property
    def num_samples(self) -> int:
        """Samples this process yields per epoch."""
        return sum(b - a for a, b in batch_slices(len(self._indices()), self.batch_size, self.drop_last))

    def __len__(self) -> int:
        return len(batch_slices(len(self._indices()), self.batch_size, self.drop_last))

    def __iter__(self):
        idx = self._indices()
        # augmentation randomness differs per process and epoch, and is independent of shuffling
        gen = generator(self.seed, "augment", self.epoch, self.rank, device=self.device)
        for a, b in batch_slices(len(idx), self.batch_size, self.drop_last):
            i = idx[a:b]
            x, y = augment_uint8_batch(self.images[i], self.labels[i], self.spec, num_classes=self.num_classes,
                                       mean=self.mean, std=self.std, train=self.train, generator=gen,
                                       dtype=self.dtype, channels_last=self.channels_last)
            yield Batch(x, y, self.labels[i], i)
