"""The ``ffcv`` backend: ``.beton`` files (written by ``fastkd data convert``) read by FFCV.

Per-sample CPU transforms are FFCV operations built on fastkd's numba kernels
(``fastkd.kernels.cpu``), so FFCV's compiler fuses them with decoding; then ``ToTensor``,
``ToDevice`` and the layout change; normalisation, cutout in normalised space and MixUp/CutMix
run on the device with the shared kernels.

Orders: ``fastkd`` (default) is the same per-epoch permutation and process sharding as every
other backend (exact evaluation shards, resumable); ``random`` and ``quasi_random`` are FFCV's
own traversals (``distributed=True`` across processes), seeded with the run seed, for data sets
read from disk rather than page cache. Per-sample randomness is a function of (seed, epoch,
sample), so the pipeline is recompiled each training epoch (a second or two).
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import torch

from fastkd.data.beton import check_beton, ffcv_module
from fastkd.kernels import augment as K
from fastkd.kernels.cpu import crop_flip_draws, cutout_centre, cutout_one, pad_crop_flip_one
from fastkd.seeding import derive_seed

from .base import ShardedPipeline

ORDERS = ("fastkd", "random", "quasi_random")


def _operations():
    """FFCV operation classes (defined lazily: FFCV is an optional dependency)."""
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation

    class PadCropFlip(Operation):
        """Zero-pad by ``pad``, random crop back to size, horizontal flip with p = 0.5."""

        def __init__(self, pad: int, flip: bool, seed: int):
            super().__init__()
            self.pad, self.flip, self.seed = pad, flip, seed

        def generate_code(self):
            loop = Compiler.get_iterator()
            pad, flip, seed = self.pad, self.flip, self.seed

            def pad_crop_flip(images, dst, indices):
                for i in loop(images.shape[0]):
                    oy, ox, f = crop_flip_draws(seed, np.int64(indices[i]), pad, flip)
                    pad_crop_flip_one(images[i], dst[i], pad, oy, ox, f)
                return dst

            pad_crop_flip.is_parallel = True
            pad_crop_flip.with_indices = True
            return pad_crop_flip

        def declare_state_and_memory(self, previous_state):
            return replace(previous_state, jit_mode=True), AllocationQuery(previous_state.shape, previous_state.dtype)

    class CutoutRaw(Operation):
        """Cutout before normalisation: squares of raw pixel value 0, in place."""

        def __init__(self, size: int, holes: int, seed: int):
            super().__init__()
            self.size, self.holes, self.seed = size, holes, seed

        def generate_code(self):
            loop = Compiler.get_iterator()
            size, holes, seed = self.size, self.holes, self.seed

            def cutout(images, dst, indices):
                h, w = images.shape[1], images.shape[2]
                for i in loop(images.shape[0]):
                    for k in range(holes):
                        cy, cx = cutout_centre(seed, np.int64(indices[i]), k, h, w)
                        cutout_one(images[i], cy, cx, size, 0)
                return images

            cutout.is_parallel = True
            cutout.with_indices = True
            return cutout

        def declare_state_and_memory(self, previous_state):
            return replace(previous_state, jit_mode=True), None

    return PadCropFlip, CutoutRaw


class FfcvPipeline(ShardedPipeline):
    def __init__(self, data, spec, *, num_workers: int = 4, order: str = "fastkd", os_cache: bool = True,
                 batches_ahead: int = 3, image_size: int | None = None, **kwargs):
        ffcv_module()
        if not data.source:
            raise ValueError("the ffcv backend reads .beton files: set data.path to a folder written by "
                             "`fastkd data convert --to beton`")
        if order not in ORDERS:
            raise ValueError(f"data.ffcv_order: {order!r} is not one of {', '.join(ORDERS)}")
        super().__init__(data, spec, **kwargs)
        self.rows = data.rows if data.rows is not None else np.arange(len(data))
        check_beton(data.source, self.rows)
        import numba
        # FFCV runs its operations on numba threads, which cannot exceed the machine's count
        self.num_workers = min(max(1, num_workers), numba.config.NUMBA_NUM_THREADS)
        self.os_cache, self.batches_ahead = os_cache, batches_ahead
        self.order = order if self.train else "fastkd"  # evaluation is always exact and in data-set order
        self.image_size = image_size
        # what is left for the device after the FFCV operations ran
        self._device_spec = dataclasses.replace(spec, cutout=spec.cutout and spec.cutout_after_normalize)

    def _indices(self) -> torch.Tensor:
        if self.order != "fastkd":  # FFCV shards and shuffles itself; here only the count matters
            return torch.arange(len(self.data) // self.world if self.train else len(self.data))
        return super()._indices()

    def _loader(self, order: np.ndarray):
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import (CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder,
                                           SimpleRGBImageDecoder)
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage
        PadCropFlip, CutoutRaw = _operations()
        spec = self.spec
        aug_seed = derive_seed(self.seed, "augment", self.epoch, self.rank) % (2 ** 62)
        if self.image_size:  # ImageNet-style: FFCV's resized-crop decoders
            s = (self.image_size, self.image_size)
            decoder = RandomResizedCropRGBImageDecoder(s) if (self.train and spec.crop_flip) else CenterCropRGBImageDecoder(s, 224 / 256)
            ops = [decoder] + ([PadCropFlip(0, True, aug_seed)] if self.train and spec.crop_flip and spec.flip else [])
        else:
            ops = [SimpleRGBImageDecoder()]
            if self.train and spec.crop_flip:
                ops.append(PadCropFlip(spec.pad, spec.flip, aug_seed))
        if self.train and spec.cutout and not spec.cutout_after_normalize:
            ops.append(CutoutRaw(spec.cutout_size, spec.cutout_holes, aug_seed))
        ops += [ToTensor(), ToDevice(self.device, non_blocking=True), ToTorchImage(channels_last=self.channels_last)]
        label_ops = [IntDecoder(), ToTensor(), Squeeze(), ToDevice(self.device, non_blocking=True)]
        common = dict(batch_size=self.batch_size, num_workers=self.num_workers, os_cache=self.os_cache,
                      drop_last=self.drop_last, pipelines={"image": ops, "label": label_ops},
                      batches_ahead=self.batches_ahead)
        if self.order == "fastkd":
            return Loader(self.data.source, order=OrderOption.SEQUENTIAL, indices=self.rows[order], **common)
        ffcv_order = OrderOption.RANDOM if self.order == "random" else OrderOption.QUASI_RANDOM
        return Loader(self.data.source, order=ffcv_order, indices=self.rows, distributed=self.world > 1,
                      seed=self.seed, **common)

    def __iter__(self):
        order = self._indices().numpy()
        slices = self._slices(len(order))
        if not slices:
            return
        batches = iter(self._loader(order))
        gen = self._mix_generator()
        try:
            for (a, b), (images, labels) in zip(slices, batches):
                x = K.normalize(images, self.data.mean, self.data.std, channels_last=self.channels_last)
                index = torch.from_numpy(order[a:b]).to(self.device) if self.order == "fastkd" else \
                    torch.full((len(labels),), -1, device=self.device)  # FFCV's own order: unknown
                yield self._finish(x, labels, index, gen)
        finally:  # an epoch left early (benchmark, error) stops FFCV's reader thread now, not at GC
            batches.close()
