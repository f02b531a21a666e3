"""The ``dataloader`` backend: what users write without fastkd, kept as the baseline.

A per-sample ``torch.utils.data.Dataset`` decodes (from the image file when there is one, as a
torchvision ImageFolder would) and augments each image in numpy on CPU worker processes; batches
are copied to the device, where MixUp/CutMix run with the shared kernels, as timm does.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from fastkd.run.child_processes import die_with_parent
from fastkd.data.decode import EVAL_CROP_RATIO, MAX_PIXELS, open_image, random_resized_crop, resize_center_crop, to_rgb
from fastkd.errors import DataError
from fastkd.run.seeding import derive_seed

from .base import ShardedPipeline


def _np_cutout(img: np.ndarray, size: int, holes: int, fill, rng) -> None:
    h, w = img.shape[:2]
    for _ in range(holes):
        cy, cx = rng.integers(h), rng.integers(w)
        y1, y2 = max(cy - size // 2, 0), min(cy - size // 2 + size, h)
        x1, x2 = max(cx - size // 2, 0), min(cx - size // 2 + size, w)
        img[y1:y2, x1:x2] = fill


class PerSampleDataset(Dataset):
    """One image per call: decoded from its file when the data set is a file listing (a tree
    larger than memory streams with flat memory), else taken from the decoded arrays."""

    def __init__(self, data, spec, train: bool, seed: int, image_size: int | None = None, max_pixels: int | None = None,
                 on_corrupt: str = "error"):
        self.images, self.labels, self.files = data.images, data.labels, data.files
        self.read_files = not data.decoded or (bool(self.files) and all(os.path.isfile(f) for f in self.files[:1]))
        self.spec, self.train, self.seed = spec, train, seed
        self.image_size = image_size if not data.decoded else None  # decoded arrays are already that size
        self.max_pixels, self.on_corrupt = max_pixels, on_corrupt
        self.mean = np.asarray(data.mean, np.float32)
        self.std = np.asarray(data.std, np.float32)
        self._shape = None

    def __len__(self):
        return len(self.labels)

    def _load(self, i: int, rng) -> np.ndarray:
        """The image as uint8 HWC; with ``image_size``: random-resized-crop (training with
        crop_flip) or resize + centre crop (otherwise), as the DALI and FFCV backends do."""
        if not self.read_files:
            return self.images[i]
        try:
            with open_image(self.files[i], max_pixels=self.max_pixels or MAX_PIXELS, target=self.image_size) as im:
                im = to_rgb(im)
                if self.image_size:
                    im = random_resized_crop(im, self.image_size, rng) if (self.train and self.spec.crop_flip) else \
                        resize_center_crop(im, self.image_size, EVAL_CROP_RATIO)
                img = np.asarray(im, dtype=np.uint8)
        except Exception as exc:  # noqa: BLE001 -- PIL raises many types for bad files
            if self.on_corrupt == "skip":
                return None
            raise DataError(f"{self.files[i]}: cannot decode image ({type(exc).__name__}: {exc}); fix or remove the "
                            "file, or set data.on_corrupt=skip to leave such files out") from exc
        if self._shape is None:
            self._shape = img.shape
        elif img.shape != self._shape:
            raise DataError(f"{self.files[i]} is {img.shape[1]}x{img.shape[0]}, other images are "
                            f"{self._shape[1]}x{self._shape[0]}; set data.image_size=N to crop them to N x N")
        return img

    def __getitem__(self, key):
        i, epoch = key  # the sampler sends the epoch along: persistent workers never see set_epoch
        s = self.spec
        rng = np.random.default_rng(derive_seed(self.seed, "sample", epoch, int(i)))
        img = self._load(i, rng)
        if img is None:  # unreadable, and data.on_corrupt=skip: left out of its batch
            warnings.warn(f"{self.files[i]}: cannot decode image; left out (data.on_corrupt=skip)", SkippedImage)
            return None
        if self.train and s.crop_flip and self.image_size:  # random-resized-crop did the cropping: flip only
            if s.flip and rng.random() < 0.5:
                img = img[:, ::-1]
        elif self.train and s.crop_flip:
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


class SkippedImage(UserWarning):
    """An unreadable image left out of its batch (data.on_corrupt=skip)."""


def _collate_readable(samples):
    """A batch of the samples that could be read (None when none could)."""
    kept = [s for s in samples if s is not None]
    return default_collate(kept) if kept else None


class _ShardSampler(Sampler):
    def __init__(self, pipeline):
        self.p = pipeline

    def __iter__(self):
        return iter([(i, self.p.epoch) for i in self.p._indices().tolist()])

    def __len__(self):
        return len(self.p._indices())


class DataLoaderPipeline(ShardedPipeline):
    reads = "files"  # an ImageFolder tree stays a listing: workers decode each file (flat memory)

    def __init__(self, data, spec, **kwargs):
        super().__init__(data, spec, **kwargs)
        self.dataset = PerSampleDataset(data, spec, self.train, self.seed, self.layout.image_size,
                                        self.layout.max_pixels, self.layout.on_corrupt)
        self.num_workers = self.layout.num_workers
        self._dl = None

    normalises_on_host = True  # its workers normalise each sample

    def host_transforms(self) -> set[str]:
        return {"crop_flip", "cutout"}  # in numpy, per sample, in the workers

    def _loader(self) -> DataLoader:
        if self._dl is None:  # built once: persistent workers start once per run, not per epoch
            self._dl = DataLoader(self.dataset, batch_size=self.batch_size, sampler=_ShardSampler(self),
                                  num_workers=self.num_workers, drop_last=self.drop_last,
                                  pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
                                  collate_fn=_collate_readable,
                                  # fork is unsafe once numba/CUDA threads exist (see the design notes)
                                  multiprocessing_context="spawn" if self.num_workers else None,
                                  # workers end with this process, however it ends
                                  worker_init_fn=functools.partial(die_with_parent, os.getpid()))
        return self._dl

    def __iter__(self):
        loader = self._loader()
        gen = self._device_generator()
        for batch in loader:
            if batch is None:  # every image of the batch was unreadable and skipped
                continue
            x, labels, index = batch
            # on a GPU the loader pins every tensor of the batch: the copies need not block the host
            x, labels, index = (t.to(self.device, non_blocking=True) for t in (x, labels, index))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield self._finish(x, labels, index, gen)
