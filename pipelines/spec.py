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

from fastkd.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, UNIT_OPEN_TOP, opt

PER_SAMPLE = ("crop_flip", "cutout")
MIXING = ("mixup", "cutmix")
NAMES = ("none",) + PER_SAMPLE + MIXING
ORDER = {name: i for i, name in enumerate(PER_SAMPLE + MIXING)}


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


class _SpecNames:
    @property
    def name(self) -> str:
        parts = [n for n in PER_SAMPLE if getattr(self, n)] + ([self.mix] if self.mix else [])
        return "+".join(parts) or "none"


# What to apply (crop_flip, cutout, mix) and the AugParams fields, frozen: one value per run.
AugmentSpec = dataclasses.make_dataclass(
    "AugmentSpec",
    [("crop_flip", bool, False), ("cutout", bool, False), ("mix", "str | None", None)]
    + [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)) for f in dataclasses.fields(AugParams)],
    bases=(_SpecNames,), frozen=True)
AugmentSpec.__module__ = __name__


def names_text() -> str:
    """The allowed ``augment`` values, as docs/config.md states them."""
    return (f"none, or {', '.join(PER_SAMPLE)} and at most one of {', '.join(MIXING)}, joined with + "
            "(e.g. crop_flip+cutmix)")


def parse_names(text: str) -> tuple[str, ...]:
    """Validate an augmentation string and return its canonical, ordered parts."""
    parts = [p.strip() for p in str(text).split("+") if p.strip()]
    unknown = [p for p in parts if p not in NAMES]
    if unknown or not parts:
        raise ValueError(f"augment: unknown transform {unknown or [text]!r}; allowed: {', '.join(NAMES)}, joined with '+'")
    parts = [p for p in parts if p != "none"]
    if sum(p in MIXING for p in parts) > 1:
        raise ValueError(f"augment: at most one mixing method ({' or '.join(MIXING)}) per spec, got {text!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"augment: a transform is repeated in {text!r}")
    return tuple(sorted(parts, key=ORDER.__getitem__))


def make_spec(augment: str, **params) -> AugmentSpec:
    """Build a spec from an augmentation string and the ``aug.*`` parameters of a config."""
    parts = parse_names(augment)
    mix = next((p for p in parts if p in MIXING), None)
    spec = AugmentSpec(crop_flip="crop_flip" in parts, cutout="cutout" in parts, mix=mix, **params)
    _validate(spec)
    return spec


def _validate(s) -> None:
    """The ranges declared on AugParams (the same ones the config checks)."""
    for f in dataclasses.fields(AugParams):
        rng = f.metadata.get("range")
        value = getattr(s, f.name)
        if rng is not None and not rng.contains(value):
            raise ValueError(f"aug.{f.name}: invalid value {value!r}; allowed: {rng}")
