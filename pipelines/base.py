"""What every backend shares: which samples this process yields per epoch, and in which batches."""
from __future__ import annotations

import torch

from fastkd.kernels.augment import one_hot
from fastkd.seeding import generator

from .batch import Batch, mix_float_batch
from .sharding import batch_slices, shard_indices


class ShardedPipeline:
    """Base of the backends: the run's layout (seed, process index and count, batch size) and
    the per-epoch shard of sample indices (``sharding.shard_indices``)."""

    def __init__(self, data, spec, *, train: bool, batch_size: int, device, seed: int, process_index: int = 0,
                 num_processes: int = 1, drop_last: bool | None = None, dtype=torch.float32,
                 channels_last: bool = True, index_device="cpu"):
        self.data, self.spec, self.train = data, spec, train
        self.device = torch.device(device)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world = process_index, num_processes
        self.drop_last = train if drop_last is None else drop_last
        self.dtype, self.channels_last = dtype, channels_last
        self.num_classes = data.num_classes
        self._index_device = index_device
        # what of the spec is left for the device once the backend's own per-sample ops ran
        # (backends whose per-sample ops cover cutout narrow it to mixing only)
        self._device_spec = spec
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self, epoch: int | None = None) -> torch.Tensor:
        """This process's samples in epoch ``epoch`` (default: the current one), in order."""
        return shard_indices(len(self.data.labels), epoch=self.epoch if epoch is None else epoch, seed=self.seed,
                             rank=self.rank, world=self.world, shuffle=self.train, device=self._index_device)

    def _slices(self, count: int):
        return batch_slices(count, self.batch_size, self.drop_last)

    @property
    def num_samples(self) -> int:
        """Samples this process yields per epoch."""
        return sum(b - a for a, b in self._slices(len(self._indices())))

    def __len__(self) -> int:
        return len(self._slices(len(self._indices())))

    def _mix_generator(self) -> torch.Generator:
        return generator(self.seed, "mix", self.epoch, self.rank, device=self.device)

    def _finish(self, x: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, gen) -> Batch:
        """Soft targets, then (training) cutout-in-normalised-space and mixing on the device, the
        same for every backend whose per-sample work happened elsewhere."""
        labels = labels.long().view(-1)
        y = one_hot(labels, self.num_classes, smoothing=self.spec.label_smoothing if self.train else 0.0)
        if self.train:
            x, y = mix_float_batch(x, y, self._device_spec, generator=gen)
        return Batch(x.to(self.dtype), y, labels, index)
