"""The ``ffcv`` backend: ``.beton`` files (written by ``fastkd data convert``) read by FFCV.

Per-sample CPU transforms are FFCV operations built on fastkd's numba kernels
(``fastkd.kernels.cpu``), so FFCV's compiler fuses them with decoding; then ``ToTensor``,
``ToDevice`` and the layout change; normalisation, cutout in normalised space and MixUp/CutMix
run on the device with the shared kernels.

Orders: ``fastkd`` (default) is the same per-epoch permutation and process sharding as every
other backend (exact evaluation shards, resumable); ``random`` and ``quasi_random`` are FFCV's
own traversals (``distributed=True`` across processes), seeded with the run seed, for data sets
read from disk rather than page cache.

One FFCV ``Loader`` serves the whole run, so its pipeline is compiled once (a few seconds) rather
than every epoch: the fastkd order is a custom traversal order fed the epoch, and per-sample
randomness, a function of (seed, epoch, sample), reads the epoch's seed at run time
(``kernels.cpu.RuntimeSeed``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from fastkd.data.beton import check_beton, ffcv_module
from fastkd.errors import ConfigError
from fastkd.fields import AT_LEAST_ONE, opt
from fastkd.kernels.cpu import RuntimeSeed, cutout_op, pad_crop_flip_op
from fastkd.run.seeding import derive_seed

from .base import ShardedPipeline



@dataclass
class FfcvOptions:
    """``data.ffcv.*``"""

    # training order: fastkd (the order every backend shares) | random | quasi_random (FFCV's own)
    order: Literal["fastkd", "random", "quasi_random"] = "fastkd"
    os_cache: bool = opt(True, execution=True)  # read the .beton through the page cache
    batches_ahead: int = opt(3, range=AT_LEAST_ONE, execution=True)  # batches prepared ahead


def _ffcv_classes():
    """FFCV operation and traversal-order classes (defined lazily: FFCV is an optional dependency).
    The operations take the address of a ``RuntimeSeed`` and read the seed each batch."""
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation
    from ffcv.traversal_order.base import TraversalOrder

    class PadCropFlip(Operation):
        """Zero-pad by ``pad``, random crop back to size, horizontal flip with p = 0.5."""

        def __init__(self, pad: int, flip: bool, seed_address: int):
            super().__init__()
            self.pad, self.flip, self.seed_address = pad, flip, seed_address

        def generate_code(self):
            pad_crop_flip = pad_crop_flip_op(Compiler.get_iterator(), self.pad, self.flip, self.seed_address)
            pad_crop_flip.is_parallel = True
            pad_crop_flip.with_indices = True
            return pad_crop_flip

        def declare_state_and_memory(self, previous_state):
            return replace(previous_state, jit_mode=True), AllocationQuery(previous_state.shape, previous_state.dtype)

    class CutoutRaw(Operation):
        """Cutout before normalisation: squares of raw pixel value 0, in place."""

        def __init__(self, size: int, holes: int, seed_address: int):
            super().__init__()
            self.size, self.holes, self.seed_address = size, holes, seed_address

        def generate_code(self):
            cutout = cutout_op(Compiler.get_iterator(), self.size, self.holes, self.seed_address)
            cutout.is_parallel = True
            cutout.with_indices = True
            return cutout

        def declare_state_and_memory(self, previous_state):
            return replace(previous_state, jit_mode=True), None

    class EpochOrder(TraversalOrder):
        """The rows to read in an epoch, from ``rows_for_epoch(epoch)`` (fastkd's shared order)."""

        def __init__(self, loader, rows_for_epoch):
            super().__init__(loader)
            self.rows_for_epoch = rows_for_epoch

        def sample_order(self, epoch: int):
            return self.rows_for_epoch(epoch)

    return PadCropFlip, CutoutRaw, EpochOrder


class FfcvPipeline(ShardedPipeline):
    reads = "beton"
    Options = FfcvOptions

    def __init__(self, data, spec, **kwargs):
        ffcv_module()
        if not data.source:
            raise ConfigError("data.path: the ffcv backend reads .beton files; point data.path at a folder "
                              "written by `fastkd data convert --to beton`")
        super().__init__(data, spec, **kwargs)
        self.rows = data.rows if data.rows is not None else np.arange(len(data))
        check_beton(data.source, self.rows)
        import numba
        # FFCV runs its operations on numba threads, which cannot exceed the machine's count
        self.num_workers = min(max(1, self.layout.num_workers), numba.config.NUMBA_NUM_THREADS)
        self.os_cache, self.batches_ahead = self.options.os_cache, self.options.batches_ahead
        self.order = self.options.order if self.train else "fastkd"  # evaluation: exact, in data-set order
        self._seed = RuntimeSeed()  # this epoch's augmentation seed, read by the compiled operations
        self._ffcv_loader = None
        self.image_size = self.layout.image_size

    @classmethod
    def require(cls) -> None:
        ffcv_module()

    @classmethod
    def indexes_training_batches(cls, options) -> bool:
        return options.order == "fastkd"  # FFCV's own orders do not say which samples a batch holds

    def host_transforms(self) -> set[str]:
        # crop/flip and cutout on raw pixels are FFCV operations; cutout in normalised space is not
        return {"crop_flip"} | ({"cutout"} if not self.spec.cutout_after_normalize else set())

    def _indices(self, epoch: int | None = None) -> torch.Tensor:
        if self.order != "fastkd":  # FFCV shards and shuffles itself; here only the count matters
            return torch.arange(len(self.data) // self.world if self.train else len(self.data))
        return super()._indices(epoch)

    def _aug_seed(self) -> int:
        return derive_seed(self.seed, "augment", self.epoch, self.rank) % (2 ** 62)

    def _loader(self):
        """The run's FFCV Loader, built (and its pipeline compiled) on first use."""
        if self._ffcv_loader is None:
            self._ffcv_loader = self._new_loader()
        return self._ffcv_loader

    def _new_loader(self):
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import (CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder,
                                           SimpleRGBImageDecoder)
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage
        PadCropFlip, CutoutRaw, EpochOrder = _ffcv_classes()
        spec, seed = self.spec, self._seed.address
        if self.image_size:  # ImageNet-style: FFCV's resized-crop decoders
            s = (self.image_size, self.image_size)
            decoder = RandomResizedCropRGBImageDecoder(s) if (self.train and spec.crop_flip) else \
                CenterCropRGBImageDecoder(s, 224 / 256)
            ops = [decoder] + ([PadCropFlip(0, True, seed)] if self.train and spec.crop_flip and spec.flip else [])
        else:
            ops = [SimpleRGBImageDecoder()]
            if self.train and spec.crop_flip:
                ops.append(PadCropFlip(spec.pad, spec.flip, seed))
        if self.train and spec.cutout and not spec.cutout_after_normalize:
            ops.append(CutoutRaw(spec.cutout_size, spec.cutout_holes, seed))
        ops += [ToTensor(), ToDevice(self.device, non_blocking=True), ToTorchImage(channels_last=self.channels_last)]
        label_ops = [IntDecoder(), ToTensor(), Squeeze(), ToDevice(self.device, non_blocking=True)]
        common = dict(batch_size=self.batch_size, num_workers=self.num_workers, os_cache=self.os_cache,
                      drop_last=self.drop_last, pipelines={"image": ops, "label": label_ops},
                      batches_ahead=self.batches_ahead)
        if self.order != "fastkd":
            ffcv_order = OrderOption.RANDOM if self.order == "random" else OrderOption.QUASI_RANDOM
            return Loader(self.data.source, order=ffcv_order, indices=self.rows, distributed=self.world > 1,
                          seed=self.seed, **common)
        loader = Loader(self.data.source, order=OrderOption.SEQUENTIAL, indices=self.rows, **common)
        # FFCV 1.0.2 cannot be handed a custom order class (its check is inverted): swap it in
        loader.traversal_order = EpochOrder(loader, lambda epoch: self.rows[self._indices(epoch).numpy()])
        loader.first_traversal_order = loader.traversal_order.sample_order(0)  # what len(loader) counts
        return loader

    def __iter__(self):
        order = self._indices().numpy()
        slices = self._slices(len(order))
        if not slices:
            return
        loader = self._loader()
        self._seed.set(self._aug_seed())  # no reader thread runs between epochs (see finally below)
        loader.next_epoch = self.epoch  # the epoch FFCV's traversal order (ours or its own) reads
        batches = iter(loader)
        gen = self._device_generator()
        # one copy per epoch, sliced per batch; FFCV's own orders do not say which samples a batch holds
        order_on_device = torch.from_numpy(order).to(self.device) if self.order == "fastkd" else \
            torch.full((len(order),), -1, device=self.device)
        try:
            for (a, b), (images, labels) in zip(slices, batches):
                x = images  # uint8; the finishing path normalises it on the device
                index = order_on_device[a:b]
                yield self._finish(x, labels, index, gen)
        finally:  # an epoch left early (benchmark, error): stop FFCV's reader thread before the next one
            batches.close()
            batches.join()
