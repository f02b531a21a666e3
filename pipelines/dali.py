"""The ``dali`` backend: images decoded and augmented by NVIDIA DALI.

Sources: an ImageFolder tree goes through DALI's file reader (JPEG decode on the GPU, ``mixed``,
when there is one; on the CPU otherwise); in-memory uint8 arrays (CIFAR archives, the bundled
sample) through an external source. Per-sample transforms run in the DALI graph: zero-padded
random crop + flip for small images, random-resized-crop + flip (train) and resize + centre
crop (eval) for ImageNet-style data (``image_size``), cutout (``fn.erase``), normalisation to
float, HWC when the run is channels_last (torch then views it as NCHW with no copy).
MixUp/CutMix then run on the training device with the shared ``fastkd.kernels.mix`` kernels, so
every backend mixes identically.

Order and sharding are fastkd's own (``sharding.shard_indices``): each epoch has its own small
DALI pipeline over this process's samples in that order with a seed derived from (seed, epoch,
rank) (DALI's random operators cannot be reseeded once built). So shuffling matches the other
backends, evaluation counts every image once (the padded tail of the last batch is cut off),
and a resumed run replays the same epochs. While one epoch runs, the next epoch's pipeline is
built on a background thread, so an epoch starts without waiting for a build.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fastkd.data import DataError
from fastkd.data.decode import _decode_chunk
from fastkd.errors import ConfigError, MissingDependency, pip_hint
from fastkd.run.seeding import derive_seed

from .base import ShardedPipeline


@dataclass
class DaliOptions:
    """``data.dali.*``"""

    decode: Literal["auto", "cpu", "mixed"] = "auto"  # JPEG decode: auto (GPU "mixed" when there is a GPU) | cpu | mixed


def install_hint() -> str:
    return (f"the dali backend needs NVIDIA DALI: {pip_hint('dali')} (the CUDA 13 wheel nvidia-dali-cuda130, which "
            "also runs in CPU mode; 'dali-cuda12' for CUDA 12)")


def _dali():
    try:
        import nvidia.dali  # noqa: F401
        return nvidia.dali
    except ImportError:
        raise MissingDependency(install_hint()) from None


def _dali_auto_augment(images, spec):
    from nvidia.dali.auto_aug import auto_augment
    # the same 25 sub-policies as fastkd's autoaugment: AutoAugment's CIFAR-10 policy was searched on
    # reduced CIFAR-10; black fill, as the tensor backend's
    return auto_augment.auto_augment(images, policy_name="reduced_cifar10", shape=images.shape()[0:2], fill_value=0)


def _dali_rand_augment(images, spec):
    from nvidia.dali.auto_aug import rand_augment
    return rand_augment.rand_augment(images, n=spec.randaugment_ops, m=spec.randaugment_magnitude,
                                     shape=images.shape()[0:2], fill_value=0)


def _dali_trivial_augment(images, spec):
    from nvidia.dali.auto_aug import trivial_augment
    return trivial_augment.trivial_augment_wide(images, shape=images.shape()[0:2], fill_value=0)


# DALI's own implementations of the automatic policies (nvidia.dali.auto_aug), run in the graph
_DALI_AUTO_AUGMENT = {"autoaugment": _dali_auto_augment, "randaugment": _dali_rand_augment,
                      "trivialaugment": _dali_trivial_augment}


class DaliPipeline(ShardedPipeline):
    """Crop/flip (or random-resized-crop) and cutout run in the DALI graph; mixing on the device."""
    reads = "files"
    Options = DaliOptions

    @classmethod
    def require(cls) -> None:
        _dali()

    normalises_on_host = True  # its graph ends in crop_mirror_normalize

    def host_transforms(self) -> set[str]:
        return {"crop_flip", "cutout"} | set(_DALI_AUTO_AUGMENT)

    def __init__(self, data, spec, **kwargs):
        _dali()
        super().__init__(data, spec, **kwargs)
        self.gpu = self.device.type == "cuda"
        decode = self.options.decode
        if decode == "mixed" and not self.gpu:
            raise ConfigError("data.dali.decode=mixed decodes on a GPU but the run's device is "
                              f"{self.device}; use auto (GPU when there is one) or cpu")
        self.decode = decode if decode != "auto" else ("mixed" if self.gpu else "cpu")
        self.files = data.files if data.files and all(os.path.isfile(f) for f in data.files[:1]) else None
        if self.files is None and not data.decoded:
            raise ValueError("DALI needs either image files or decoded arrays")
        self.num_threads = max(1, self.layout.num_workers)
        self.image_size = self.layout.image_size
        # HWC images are NCHW tensors in channels_last memory once permuted: no layout copy
        self._layout = "HWC" if self.channels_last else "CHW"
        self._builder = None  # one background thread, started with the first epoch
        self._next = None  # (epoch, future of its built pipeline)

    @property
    def prepared_epoch(self) -> int | None:
        """The epoch whose pipeline is built (or being built) ahead, if any."""
        return self._next[0] if self._next is not None else None

    # ---- one pipeline per epoch, the next one built while this one runs --------------------
    def _build(self, epoch: int, order: np.ndarray):
        pipe = self._graph(order, epoch)
        pipe.build()
        return pipe

    def _pipeline_for_epoch(self, order: np.ndarray):
        """This epoch's pipeline (reading ``order``): the one built in the background if it is
        for this epoch."""
        ahead, self._next = self._next, None
        pipe = None
        if ahead is not None and ahead[0] == self.epoch:
            try:
                pipe = ahead[1].result()
            except Exception:  # noqa: BLE001 -- built again below, where its error surfaces as usual
                pipe = None
        elif ahead is not None:  # set_epoch jumped (a resumed run): that build is not needed
            ahead[1].cancel()
        return pipe if pipe is not None else self._build(self.epoch, order)

    def _build_next_epoch_in_background(self) -> None:
        # evaluation reads the same order, without random operators, every time it is run
        upcoming = self.epoch + 1 if self.train else self.epoch
        if self._builder is None:
            self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastkd-dali-build")
        # the order is drawn here: torch called from the builder thread would start its own
        # OpenMP team there, competing with this thread's
        order = self._indices(upcoming).numpy()
        self._next = (upcoming, self._builder.submit(self._build, upcoming, order))

    # ---- the DALI graph --------------------------------------------------------------------
    def _graph(self, order: np.ndarray, epoch: int):
        """The (not yet built) DALI pipeline reading ``order``; on a GPU every output, labels
        included, ends on the device so one stream-ordered copy hands it to torch."""
        dali = _dali()
        from nvidia.dali import fn, types
        spec, data = self.spec, self.data
        bs = self.batch_size
        mean = [255.0 * m for m in data.mean]
        std = [255.0 * s for s in data.std]

        device_id = None
        if self.gpu:
            device_id = self.device.index if self.device.index is not None else torch.cuda.current_device()

        # exec_dynamic: the executor whose run(stream) hands outputs over on torch's stream (DALI >= 1.44;
        # the default only from 1.51, so it is asked for by name)
        @dali.pipeline_def(batch_size=bs, num_threads=self.num_threads, device_id=device_id,
                           seed=derive_seed(self.seed, "dali", epoch, self.rank) % (2 ** 31), prefetch_queue_depth=2,
                           exec_dynamic=True, enable_conditionals=self._auto_augments() != [])
        def graph():
            if self.files is not None:
                files = [self.files[i] for i in order]
                labels = [int(data.labels[i]) for i in order]
                jpegs, labels_node = fn.readers.file(files=files, labels=labels, random_shuffle=False,
                                                     pad_last_batch=True, name="Reader")
                images = fn.decoders.image(jpegs, device=self.decode, output_type=types.RGB)
            else:
                def batch_source(info):
                    # batches past the end (prefetching) repeat the last one and are never used
                    start = min(info.iteration * bs, max(len(order) - 1, 0))
                    idx = order[start:start + bs]
                    idx = np.concatenate([idx, np.repeat(idx[-1:], bs - len(idx))]) if len(idx) < bs else idx
                    return [data.images[i] for i in idx], [np.array([data.labels[i]], dtype=np.int32) for i in idx]

                images, labels_node = fn.external_source(source=batch_source, num_outputs=2, batch=True,
                                                         batch_info=True, layout=["HWC", ""])
                if self.gpu:
                    images = images.gpu()
            mirror = fn.random.coin_flip(probability=0.5) if (self.train and spec.flip and spec.crop_flip) else 0
            if self.image_size:  # ImageNet-style: crop_flip means random-resized-crop + flip
                s = self.image_size
                if self.train and spec.crop_flip:
                    images = fn.random_resized_crop(images, size=[s, s])
                else:
                    images = fn.resize(images, resize_shorter=int(round(s * 256 / 224)))
                crop = (s, s)
            else:
                if self.train and spec.crop_flip:
                    p = spec.pad
                    offsets = [float(v) for v in range(-p, p + 1)]
                    oy = fn.random.uniform(values=offsets)
                    ox = fn.random.uniform(values=offsets)
                    anchor = fn.stack(oy, ox)
                    shape = images.shape(dtype=types.FLOAT)[0:2]  # (H, W) of HWC
                    images = fn.slice(images, anchor, shape, axis_names="HW", normalized_anchor=False,
                                      normalized_shape=False, out_of_bounds_policy="pad", fill_values=0)
                crop = None
            for name in self._auto_augments():  # on the cropped uint8 HWC images; the flip follows in cmn
                images = _DALI_AUTO_AUGMENT[name](images, spec)
            cmn = dict(mean=mean, std=std, mirror=mirror, dtype=types.FLOAT, output_layout=self._layout)
            if crop:
                cmn["crop"] = crop
            out = fn.crop_mirror_normalize(images, **cmn)
            if self.train and spec.cutout:
                out = self._cutout(fn, types, out)
            return out, (labels_node.gpu() if self.gpu else labels_node)

        return graph()

    def _auto_augments(self) -> list[str]:
        return [n for n in self.spec.transforms if n in _DALI_AUTO_AUGMENT] if self.train else []

    def _cutout(self, fn, types, out):
        """Cutout (DeVries & Taylor 2017) as fn.erase: centre uniform over the image, clipped."""
        s = self.spec
        size = float(s.cutout_size)
        h_axis = self._layout.index("H")
        hw = out.shape(dtype=types.FLOAT)[h_axis:h_axis + 2]  # (H, W) in either layout
        anchors, shapes = [], []
        for _ in range(s.cutout_holes):
            centre = fn.random.uniform(range=[0.0, 1.0], shape=2) * hw
            anchors.append(fn.cast(fn.cast(centre, dtype=types.INT32), dtype=types.FLOAT) - float(s.cutout_size // 2))
            shapes += [size, size]
        anchor = anchors[0] if len(anchors) == 1 else fn.cat(*anchors)
        # before normalisation a hole is raw pixel 0, i.e. -mean/std once normalised
        fill = [0.0] if s.cutout_after_normalize else [-m / d for m, d in zip(self.data.mean, self.data.std)]
        return fn.erase(out, anchor=anchor, shape=shapes, axis_names="HW", fill_value=fill)

    # ---- iteration -------------------------------------------------------------------------
    def _stream(self):
        """torch's current stream on the training device (None on the CPU): DALI hands its
        outputs over on it and the copies below are queued on it, so nothing waits on the host."""
        return torch.cuda.current_stream(self.device) if self.gpu else None

    def _to_torch(self, tensor_list) -> torch.Tensor:
        """Copy a dense DALI TensorList into a new torch tensor on the training device.

        ``feed_ndarray`` copies a GPU TensorList with cudaMemcpyAsync on the given stream but a
        CPU one with a plain host memcpy, which into device memory would crash: so on a GPU the
        graph puts every output, labels included, on the device (``_graph``)."""
        from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type
        t = tensor_list.as_tensor()
        out = torch.empty(t.shape(), dtype=to_torch_type[t.dtype], device=self.device)
        feed_ndarray(t, out, cuda_stream=self._stream())
        return out

    def _run(self, pipe, batch_index: np.ndarray):
        try:
            return pipe.run(self._stream())
        except RuntimeError as exc:
            if self.files is None:
                raise
            files = [self.files[i] for i in batch_index]
            bad = [f for f, r in zip(files, _decode_chunk(files, None)) if isinstance(r, str)]
            if bad:  # name the file DALI choked on (its own message may not)
                raise DataError(f"{bad[0]}: cannot decode image (DALI: {str(exc).splitlines()[0]}); fix or remove "
                                "the file") from exc
            raise

    def __iter__(self):
        order = self._indices().numpy()
        slices = self._slices(len(order))
        if not slices:
            return
        pipe = self._pipeline_for_epoch(order)
        gen = self._device_generator()
        order_on_device = torch.from_numpy(order).to(self.device)  # one copy per epoch, sliced per batch
        try:
            for a, b in slices:
                images, labels = self._run(pipe, order[a:b])
                x = self._to_torch(images)[: b - a]  # the padded tail of the last batch is cut off
                if self._layout == "HWC":
                    x = x.permute(0, 3, 1, 2)  # channels_last strides, same memory
                labels = self._to_torch(labels).view(-1)[: b - a]
                if a == 0:  # after the first batch, so the build does not delay it
                    self._build_next_epoch_in_background()
                yield self._finish(x, labels, order_on_device[a:b], gen)
        finally:
            del pipe
