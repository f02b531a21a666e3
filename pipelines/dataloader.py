"""The ``dataloader`` backend: what users write without fastkd, kept as the baseline.

A per-sample ``torch.utils.data.Dataset`` decodes (from the image file when there is one, as a
torchvision ImageFolder would) and augments each image in numpy on CPU worker processes; batches
are copied to the device, where MixUp/CutMix run with the shared kernels, as timm does.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fastkd.seeding import derive_seed

from .base import ShardedPipeline


def _np_cutout(img: np.ndarray, size: int, holes: int, fill, rng) -> None:
    h, w = img.shape[:2]
    for _ in range(holes):
        cy, cx = rng.integers(h), rng.integers(w)
        y1, y2 = max(cy - size // 2, 0), min(cy - size // 2 + size, h)
        x1, x2 = max(cx - size // 2, 0), min(cx - size // 2 + size, w)
        img[y1:y2, x1:x2] = fill


class PerSampleDataset(Dataset):
    def __init__(self, data, spec, train: bool, seed: int):
        self.images, self.labels, self.files = data.images, data.labels, data.files
        self.read_files = bool(self.files) and all(os.path.isfile(f) for f in self.files[:1])
        self.spec, self.train, self.seed = spec, train, seed
        self.mean = np.asarray(data.mean, np.float32)
        self.std = np.asarray(data.std, np.float32)
    def __len__(self):
        return len(self.labels)

    def _load(self, i: int) -> np.ndarray:
        if self.read_files:
            from fastkd.data.decode import decode_bytes
            with open(self.files[i], "rb") as f:
                return decode_bytes(f.read(), None)
        return self.images[i]

    def __getitem__(self, key):
        i, epoch = key  # the sampler sends the epoch along: persistent workers never see set_epoch
        img = self._load(i)
        s = self.spec
        rng = np.random.default_rng(derive_seed(self.seed, "sample", epoch, int(i)))
        if self.train and s.crop_flip:
            h, w = img.shape[:2]
            padded = np.pad(img, ((s.pad, s.pad), (s.pad, s.pad), (0, 0)))
            oy, ox = rng.integers(2 * s.pad + 1), rng.integers(2 * s.pad + 1)
            img = padded[oy:oy + h, ox:ox + w]
            if s.flip and rng.random() < 0.5:
                img = img[:, ::-1]
        img = np.array(img, copy=True)
        if self.train and s.cutout and not s.cutout_after_normalize:
            _np_cutout(img, s.cutout_size, s.cutout_holes, 0, rng)
        x = (img.astype(np.float32) / 255.0 - self.mean) / self.std
        if self.train and s.cutout and s.cutout_after_normalize:
            _np_cutout(x, s.cutout_size, s.cutout_holes, 0.0, rng)
        return torch.from_numpy(x.transpose(2, 0, 1).copy()), int(self.labels[i]), int(i)


class _ShardSampler(Sampler):
    def __init__(self, pipeline):
        self.p = pipeline

    def __iter__(self):
        return iter([(i, self.p.epoch) for i in self.p._indices().tolist()])

    def __len__(self):
        return len(self.p._indices())


class DataLoaderPipeline(ShardedPipeline):
    reads = "arrays"

    def __init__(self, data, spec, **kwargs):
        super().__init__(data, spec, **kwargs)
        self.dataset = PerSampleDataset(data, spec, self.train, self.seed)
        self.num_workers = self.layout.num_workers
        self._dl = None

    def host_transforms(self) -> set[str]:
        return {"crop_flip", "cutout"}  # in numpy, per sample, in the workers

    def _loader(self) -> DataLoader:
        if self._dl is None:  # built once: persistent workers start once per run, not per epoch
            self._dl = DataLoader(self.dataset, batch_size=self.batch_size, sampler=_ShardSampler(self),
                                  num_workers=self.num_workers, drop_last=self.drop_last,
                                  pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
                                  # fork is unsafe once numba/CUDA threads exist (see the design notes)
                                  multiprocessing_context="spawn" if self.num_workers else None)
        return self._dl

    def __iter__(self):
        loader = self._loader()
        gen = self._device_generator()
        for x, labels, index in loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield self._finish(x, labels.to(self.device), index.to(self.device), gen)
