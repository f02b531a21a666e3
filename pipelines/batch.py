"""The batch contract and the on-device augmentation every backend finishes with."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastkd.kernels import augment as K
from fastkd.kernels import mix as M

from .spec import AugmentSpec


@dataclass
class Batch:
    """images: (N, C, H, W) normalised, channels_last, on the device; targets: (N, K) soft labels.

    ``labels`` are the hard labels (before mixing) and ``index`` the data-set indices of the
    samples, so evaluation can save per-image outputs and tests can check coverage.
    """

    images: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.images, self.targets, self.labels, self.index)))


def augment_uint8_batch(images: torch.Tensor, labels: torch.Tensor, spec: AugmentSpec, *, num_classes: int,
                        mean, std, train: bool, generator=None, dtype=torch.float32,
                        channels_last: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) + int labels -> normalised images and soft targets, all on the device.

    Order: crop/flip on uint8 (cheap, exact), cutout (before or after normalising), normalise,
    mixing, with label smoothing folded into the one-hot rows (smoothing and mixing commute).
    Evaluation (``train=False``) only normalises.
    """
    if train and spec.crop_flip:
        images = K.crop_flip(images, pad=spec.pad, flip=spec.flip, generator=generator)
    if train and spec.cutout and not spec.cutout_after_normalize:
        images = K.cutout(images, size=spec.cutout_size, holes=spec.cutout_holes, generator=generator)
    x = K.normalize(images, mean, std, dtype=torch.float32, channels_last=channels_last)
    y = K.one_hot(labels, num_classes, smoothing=spec.label_smoothing if train else 0.0)
    if train:
        x, y = mix_float_batch(x, y, spec, generator=generator)
    return x.to(dtype), y


def mix_float_batch(x: torch.Tensor, y: torch.Tensor, spec: AugmentSpec, *,
                    generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The float-side part of training augmentation: cutout in normalised space, then mixing.

    Backends whose per-sample transforms ran elsewhere (DALI graph, FFCV ops) call this after the
    batch reached the device, so all of them share the same mixing semantics.
    """
    if spec.cutout and spec.cutout_after_normalize:
        x = K.cutout(x, size=spec.cutout_size, holes=spec.cutout_holes, generator=generator)
    if spec.mix == "mixup":
        x, y = M.mixup(x, y, spec.mixup_alpha, per_sample=spec.per_sample, generator=generator)
    elif spec.mix == "cutmix":
        x, y = M.cutmix(x, y, spec.cutmix_alpha, per_sample=spec.per_sample, prob=spec.cutmix_prob, generator=generator)
    return x, y
