"""The augmentation spec every backend shares: what to apply, with which parameters.

A spec is written as a ``+``-joined list of transform names, e.g. ``crop_flip+cutmix``:
per-sample transforms (``crop_flip``, ``cutout``) compose with at most one mixing method
(``mixup`` or ``cutmix``). ``none`` means normalise only. Whether a base transform runs under a
mixing method is therefore explicit: ``mixup`` alone is the paper's likely setting,
``crop_flip+mixup`` the other reading.
"""
from __future__ import annotations

from dataclasses import dataclass

PER_SAMPLE = ("crop_flip", "cutout")
MIXING = ("mixup", "cutmix")
NAMES = ("none",) + PER_SAMPLE + MIXING
ORDER = {name: i for i, name in enumerate(PER_SAMPLE + MIXING)}


@dataclass(frozen=True)
class AugmentSpec:
    crop_flip: bool = False
    cutout: bool = False
    mix: str | None = None  # "mixup" | "cutmix" | None
    pad: int = 4
    flip: bool = True
    cutout_size: int = 16
    cutout_holes: int = 1
    cutout_after_normalize: bool = True  # the paper zeroes pixels in normalised space
    mixup_alpha: float = 1.0
    cutmix_alpha: float = 1.0
    cutmix_prob: float = 1.0
    per_sample: bool = False  # one lam per batch (paper) or per sample
    label_smoothing: float = 0.0

    @property
    def name(self) -> str:
        parts = [n for n in PER_SAMPLE if getattr(self, n)] + ([self.mix] if self.mix else [])
        return "+".join(parts) or "none"

    @property
    def is_identity(self) -> bool:
        return self.name == "none" and not self.label_smoothing


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


def _validate(s: AugmentSpec) -> None:
    checks = [
        ("aug.pad", s.pad, s.pad >= 0),
        ("aug.cutout_size", s.cutout_size, s.cutout_size > 0),
        ("aug.cutout_holes", s.cutout_holes, s.cutout_holes >= 1),
        ("aug.mixup_alpha", s.mixup_alpha, s.mixup_alpha > 0),
        ("aug.cutmix_alpha", s.cutmix_alpha, s.cutmix_alpha > 0),
        ("aug.cutmix_prob", s.cutmix_prob, 0.0 <= s.cutmix_prob <= 1.0),
        ("aug.label_smoothing", s.label_smoothing, 0.0 <= s.label_smoothing < 1.0),
    ]
    for key, value, ok in checks:
        if not ok:
            raise ValueError(f"{key}: invalid value {value!r}")
