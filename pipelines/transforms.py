"""The augmentations the device runs, by name: adding one is a ``DeviceTransform`` (its kernel
calls) plus one line in ``_TRANSFORMS``, or ``register`` at run time. The order of the table is
the order of application; ``augment`` strings name them joined with ``+``.

A transform runs at one of two stages of ``ShardedPipeline._finish``:
- on the raw uint8 pixels, before normalisation (``pixels(x, spec, generator) -> x``);
- on the normalised float batch with its soft targets, training only
  (``normalised(x, y, spec, generator) -> (x, y)``): mixing methods, which also mix the targets.
A transform with both (cutout) says which one a spec asks for (``on_pixels``). ``mixing``
transforms replace pairs of samples; a spec holds at most one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fastkd.extensions import ExtensionTable
from fastkd.kernels import augment as K
from fastkd.kernels import auto_augment as A
from fastkd.kernels import mix as M


@dataclass(frozen=True)
class DeviceTransform:
    name: str
    pixels: Callable | None = None
    normalised: Callable | None = None
    mixing: bool = False
    on_pixels: Callable = lambda spec: True  # with both stages: whether this spec runs it on the pixels

    def runs_on_pixels(self, spec) -> bool:
        if self.pixels is None or self.normalised is None:
            return self.pixels is not None
        return self.on_pixels(spec)


def _crop_flip(x, s, gen):
    return K.crop_flip(x, pad=s.pad, flip=s.flip, generator=gen)


def _auto_augment(x, s, gen):
    return A.auto_augment(x, generator=gen)


def _rand_augment(x, s, gen):
    return A.rand_augment(x, ops=s.randaugment_ops, level=s.randaugment_magnitude, generator=gen)


def _trivial_augment(x, s, gen):
    return A.trivial_augment(x, generator=gen)


def _cutout_pixels(x, s, gen):
    return K.cutout(x, size=s.cutout_size, holes=s.cutout_holes, generator=gen)


def _cutout_normalised(x, y, s, gen):
    return K.cutout(x, size=s.cutout_size, holes=s.cutout_holes, generator=gen), y


def _mixup(x, y, s, gen):
    return M.mixup(x, y, s.mixup_alpha, per_sample=s.per_sample, generator=gen)


def _cutmix(x, y, s, gen):
    return M.cutmix(x, y, s.cutmix_alpha, per_sample=s.per_sample, prob=s.cutmix_prob, generator=gen)


_TRANSFORMS = ExtensionTable("augment transform", {
    "crop_flip": DeviceTransform("crop_flip", pixels=_crop_flip),
    # the automatic policies after crop+flip and before cutout, as their papers ran them on CIFAR
    "autoaugment": DeviceTransform("autoaugment", pixels=_auto_augment),
    "randaugment": DeviceTransform("randaugment", pixels=_rand_augment),
    "trivialaugment": DeviceTransform("trivialaugment", pixels=_trivial_augment),
    # the paper zeroes pixels in normalised space (aug.cutout_after_normalize, the default)
    "cutout": DeviceTransform("cutout", pixels=_cutout_pixels, normalised=_cutout_normalised,
                              on_pixels=lambda s: not s.cutout_after_normalize),
    "mixup": DeviceTransform("mixup", normalised=_mixup, mixing=True),
    "cutmix": DeviceTransform("cutmix", normalised=_cutmix, mixing=True),
})
BUILT_IN = _TRANSFORMS.built_in


def transform(name: str) -> DeviceTransform:
    return _TRANSFORMS[name]


def names() -> tuple[str, ...]:
    """Every transform, in the order of application."""
    return tuple(_TRANSFORMS)


def per_sample_names() -> tuple[str, ...]:
    return tuple(n for n, t in _TRANSFORMS.items() if not t.mixing)


def mixing_names() -> tuple[str, ...]:
    return tuple(n for n, t in _TRANSFORMS.items() if t.mixing)


def register(t: DeviceTransform) -> None:
    """Add a transform at run time (a plugin, a test); it is named after the built-in ones and runs
    at its stage. Backends that do not run it on the host leave it to the device."""
    if t.name == "none" or "+" in t.name:
        raise ValueError(f"augment: {t.name!r} is not a plain name")
    _TRANSFORMS.add(t.name, t)


def unregister(name: str) -> None:
    _TRANSFORMS.remove(name)
