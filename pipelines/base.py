"""What every backend shares: the run's layout, which samples this process yields per epoch and in
which batches, and the one finishing path that turns a backend's output into a :class:`Batch`.

A backend is one class (one file) that declares what it is:

- ``reads``: the form of source it takes from ``load_splits``: ``"arrays"`` (decoded uint8
  images), ``"files"`` (an ImageFolder tree may stay a file listing; it decodes the files itself)
  or ``"beton"`` (a folder written by ``fastkd data convert``);
- ``Options``: a dataclass of its own settings, which appear in the config as ``data.<name>.*``
  (an empty one when it has none);
- ``host_transforms()``: the per-sample transforms of the spec it runs itself, before the batch
  reaches the device. The rest of the spec (``device_spec``) runs in :meth:`_finish`, the same
  code for every backend.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from fastkd.errors import ConfigError
from fastkd.kernels import augment as K
from fastkd.run.seeding import generator

from .batch import Batch
from .sharding import batch_slices, shard_indices
from . import transforms
from .spec import AugmentSpec


@dataclass(frozen=True)
class Layout:
    """Where and how a pipeline delivers its batches: the same for every backend of a run."""

    device: torch.device
    seed: int
    batch_size: int
    rank: int = 0  # this process's index ...
    world: int = 1  # ... among this many
    drop_last: bool | None = None  # default: True for training, False for evaluation
    channels_last: bool = True
    dtype: torch.dtype = torch.float32
    num_workers: int = 4  # host workers or threads a backend may use
    image_size: int | None = None  # resize + crop images of other sizes to this (ImageFolder)
    max_pixels: int | None = None  # images with more pixels are refused unread (default: fastkd.data.decode's)
    on_corrupt: str = "error"  # an image that cannot be read while streaming: error | skip (left out of its batch)

    @classmethod
    def of(cls, **kw) -> "Layout":
        """A layout from keyword arguments, accepting Accelerate's names for rank and world."""
        if "process_index" in kw:
            kw["rank"] = kw.pop("process_index")
        if "num_processes" in kw:
            kw["world"] = kw.pop("num_processes")
        kw["device"] = torch.device(kw["device"])
        return cls(**kw)


@dataclass
class NoOptions:
    """A backend without settings of its own."""


class ShardedPipeline:
    """Base of the backends: the run's layout, the per-epoch shard of sample indices
    (``sharding.shard_indices``), batch slicing, and the finishing path."""

    reads: ClassVar[str] = "arrays"
    Options: ClassVar[type] = NoOptions
    normalises_on_host: ClassVar[bool] = False  # hands _finish normalised floats, not raw uint8 pixels

    def __init__(self, data, spec: AugmentSpec, *, train: bool, layout: Layout, options=None):
        self.data, self.spec, self.train = data, spec, train
        self.layout = layout
        self.options = options if options is not None else self.Options()
        self.device = layout.device
        self.batch_size, self.seed = layout.batch_size, layout.seed
        self.rank, self.world = layout.rank, layout.world
        self.drop_last = train if layout.drop_last is None else layout.drop_last
        self.dtype, self.channels_last = layout.dtype, layout.channels_last
        self.num_classes = data.num_classes
        self.epoch = 0
        self._mean = K.channel_constants(data.mean, self.device)  # built once: each build is a host copy
        self._std = K.channel_constants(data.std, self.device)
        # what of the spec the device still has to do once this backend's host work is done
        host = self.host_transforms()
        self.device_spec = dataclasses.replace(spec, transforms=tuple(t for t in spec.transforms if t not in host)) \
            if train else AugmentSpec()
        steps = [transforms.transform(n) for n in self.device_spec.transforms]
        self._on_pixels = [t for t in steps if t.runs_on_pixels(self.device_spec)]
        self._on_normalised = [t for t in steps if not t.runs_on_pixels(self.device_spec)]
        if self.normalises_on_host and self._on_pixels:
            raise ConfigError(f"augment: {', '.join(t.name for t in self._on_pixels)} runs on raw pixels on the "
                              f"device, but the {type(self).__name__} backend normalises on the host; use "
                              "data.backend=tensor or ffcv for it")

    @classmethod
    def require(cls) -> None:
        """Raise MissingDependency (with the install hint) when the backend's package is absent."""

    @classmethod
    def indexes_training_batches(cls, options) -> bool:
        """Whether training batches carry the data-set index of each sample (with these options)."""
        return True

    def host_transforms(self) -> set[str]:
        """Names of the spec's per-sample transforms ("crop_flip", "cutout") this backend runs on
        the host; the base class runs the others on the device."""
        return set()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self, epoch: int | None = None) -> torch.Tensor:
        """This process's samples in epoch ``epoch`` (default: the current one), in order, on the
        host: drawn there by every backend, so every backend and device has the same order."""
        return shard_indices(len(self.data.labels), epoch=self.epoch if epoch is None else epoch, seed=self.seed,
                             rank=self.rank, world=self.world, shuffle=self.train)

    def _slices(self, count: int):
        return batch_slices(count, self.batch_size, self.drop_last)

    @property
    def num_samples(self) -> int:
        """Samples this process yields per epoch."""
        return sum(b - a for a, b in self._slices(len(self._indices())))

    def __len__(self) -> int:
        return len(self._slices(len(self._indices())))

    def _device_generator(self) -> torch.Generator:
        """The stream of every random draw made on the device in this epoch and process."""
        return generator(self.seed, "device-augment", self.epoch, self.rank, device=self.device)

    def _finish(self, x: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, gen) -> Batch:
        """The one path from a backend's output to a Batch, for every backend.

        ``x`` is either raw uint8 (N, C, H, W) or already normalised float. The device part of the
        spec runs as ``pipelines.transforms`` orders it: on uint8, the pixel-stage transforms
        (crop/flip as one gather, cutout before normalisation), then normalisation; on floats, the
        normalised-stage ones (cutout in normalised space, MixUp or CutMix), with label smoothing
        folded into the soft targets (smoothing and mixing commute).
        """
        s = self.device_spec
        labels = labels.long().view(-1)
        if x.dtype == torch.uint8:
            for t in self._on_pixels:
                x = t.pixels(x, s, gen)
            x = K.normalize(x, self._mean, self._std, dtype=torch.float32, channels_last=self.channels_last)
        y = K.one_hot(labels, self.num_classes, smoothing=self.spec.label_smoothing if self.train else 0.0)
        if self.train:
            for t in self._on_normalised:
                x, y = t.normalised(x, y, s, gen)
        return Batch(x.to(self.dtype), y, labels, index)
