"""The augmentation spec every backend shares: what to apply, with which parameters.

A spec is written as a ``+``-joined list of transform names, e.g. ``crop_flip+cutmix``:
per-sample transforms (``crop_flip``, ``cutout``) compose with at most one mixing method
(``mixup`` or ``cutmix``). ``none`` means normalise only. Whether a base transform runs under a
mixing method is therefore explicit: ``mixup`` alone is the paper's likely setting,
``crop_flip+mixup`` the other reading.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fastkd.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, UNIT_OPEN_TOP, Range, opt
from fastkd.kernels.auto_augment import RAND_AUGMENT_BINS, RAND_AUGMENT_LEVEL, RAND_AUGMENT_OPS

from . import transforms

# The paper's augmentations, in its order (Das et al. 2020): a study's default grid and the
# report's order of rows and colours
PAPER_AUGMENTS = ("none", "crop_flip", "cutout", "mixup", "cutmix")



@dataclass
class AugParams:
    """The parameters of every transform: the config's ``aug.*`` section, one definition with its
    valid ranges (AugmentSpec carries the same fields)."""

    pad: int = opt(4, range=NON_NEGATIVE)  # crop_flip: zero padding before the random crop
    flip: bool = True  # crop_flip: horizontal flip with p = 0.5
    cutout_size: int = opt(16, range=AT_LEAST_ONE)
    cutout_holes: int = opt(1, range=AT_LEAST_ONE)
    cutout_after_normalize: bool = True  # the paper zeroes pixels in normalised space
    mixup_alpha: float = opt(1.0, range=POSITIVE)
    cutmix_alpha: float = opt(1.0, range=POSITIVE)
    cutmix_prob: float = opt(1.0, range=UNIT)
    per_sample: bool = False  # one lambda per batch (the paper) or per sample
    label_smoothing: float = opt(0.0, range=UNIT_OPEN_TOP)
    # randaugment: operations per sample and their magnitude bin (of 31), Cubuk et al. 2020's N and M
    randaugment_ops: int = opt(RAND_AUGMENT_OPS, range=AT_LEAST_ONE, later=True)
    randaugment_magnitude: int = opt(RAND_AUGMENT_LEVEL, range=Range(0, RAND_AUGMENT_BINS - 1), later=True)


class _SpecNames:
    """What a spec applies, read from its ``transforms`` (names in the order of application)."""

    @property
    def name(self) -> str:
        return "+".join(self.transforms) or "none"

    def has(self, name: str) -> bool:
        return name in self.transforms

    @property
    def crop_flip(self) -> bool:
        return "crop_flip" in self.transforms

    @property
    def cutout(self) -> bool:
        return "cutout" in self.transforms

    @property
    def mix(self) -> str | None:
        """The mixing transform, if any (at most one)."""
        return next((n for n in self.transforms if transforms.transform(n).mixing), None)


# What to apply (the transforms' names, in order) and the AugParams fields, frozen: one per run.
AugmentSpec = dataclasses.make_dataclass(
    "AugmentSpec",
    [("transforms", tuple, ())]
    + [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)) for f in dataclasses.fields(AugParams)],
    bases=(_SpecNames,), frozen=True)
AugmentSpec.__module__ = __name__


def names_text() -> str:
    """The allowed ``augment`` values, as docs/config.md states them."""
    return (f"none, or {', '.join(transforms.per_sample_names())} and at most one of "
            f"{', '.join(transforms.mixing_names())}, joined with + (e.g. crop_flip+cutmix)")


def parse_names(text: str) -> tuple[str, ...]:
    """Validate an augmentation string and return its canonical, ordered parts."""
    known = ("none",) + transforms.names()
    parts = [p.strip() for p in str(text).split("+") if p.strip()]
    unknown = [p for p in parts if p not in known]
    if unknown or not parts:
        raise ValueError(f"augment: unknown transform {unknown or [text]!r}; allowed: {', '.join(known)}, joined with '+'")
    parts = [p for p in parts if p != "none"]
    mixing = transforms.mixing_names()
    if sum(p in mixing for p in parts) > 1:
        raise ValueError(f"augment: at most one mixing method ({' or '.join(mixing)}) per spec, got {text!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"augment: a transform is repeated in {text!r}")
    order = {n: i for i, n in enumerate(transforms.names())}
    return tuple(sorted(parts, key=order.__getitem__))


def make_spec(augment: str, **params) -> AugmentSpec:
    """Build a spec from an augmentation string and the ``aug.*`` parameters of a config."""
    spec = AugmentSpec(transforms=parse_names(augment), **params)
    _validate(spec)
    return spec


def _validate(s) -> None:
    """The ranges declared on AugParams (the same ones the config checks)."""
    for f in dataclasses.fields(AugParams):
        rng = f.metadata.get("range")
        value = getattr(s, f.name)
        if rng is not None and not rng.contains(value):
            raise ValueError(f"aug.{f.name}: invalid value {value!r}; allowed: {rng}")
