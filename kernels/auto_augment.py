"""Automatic augmentation policies on uint8 (N, C, H, W) batches, per sample, on the batch's device:

- ``auto_augment``: AutoAugment's CIFAR-10 policy (Cubuk et al., CVPR 2019, appendix table): each
  sample draws one of 25 sub-policies; each of its two operations runs with its probability at its
  magnitude (of 10 bins).
- ``rand_augment``: RandAugment (Cubuk et al., NeurIPS 2020): ``ops`` operations per sample, each
  uniform over the 14 (identity included), all at one magnitude (of 31 bins; 9 by default).
- ``trivial_augment``: TrivialAugment-wide (Mueller & Hutter, ICCV 2021): one operation per sample,
  uniform over the 14, at a magnitude uniform over 31 bins, with the "wide" ranges.

Magnitude bins map linearly onto each operation's range, bin 0 the weakest and the last the
strongest (the convention PyTorch users know from these policies): shear 0.3 (wide 0.99),
translation 150/331 of the image side (wide 32 px), rotation 30 degrees (wide 135), enhancement
factors 1 +- 0.9 (wide 0.99), posterize 8 down to 4 bits (wide 2), solarize threshold 255 down to
0; the geometric and enhancement magnitudes take a random sign with p = 0.5.

Every draw comes from the given generator in fixed-size calls, so the same seed gives the same
batch whatever the images hold. Each operation runs on the samples that drew it: on a CUDA batch
it runs on the whole batch and ``torch.where`` keeps the chosen samples (no host sync); on the CPU
it runs on the chosen rows alone (less work, the same result: every operation is per sample).
"""
from __future__ import annotations

import functools

import torch

from .image_ops import OPS
from .sampling import uniform_int

# Cubuk et al. 2019, the CIFAR-10 policy: 25 sub-policies of two (operation, probability, bin)
CIFAR10_POLICY = (
    (("invert", 0.1, None), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, None), ("equalize", 0.5, None)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, None)),
    (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
    (("equalize", 0.2, None), ("equalize", 0.6, None)),
    (("color", 0.9, 9), ("equalize", 0.6, None)),
    (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.9, None), ("solarize", 0.4, 3)),
    (("equalize", 0.8, None), ("invert", 0.1, None)),
    (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
)
AUTO_AUGMENT_BINS = 10
RAND_AUGMENT_BINS = 31
RAND_AUGMENT_OPS, RAND_AUGMENT_LEVEL = 2, 9  # RandAugment's defaults: N operations at bin M

# the operations RandAugment and TrivialAugment choose from (invert is AutoAugment's alone)
SPACE = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
         "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
SIGNED = {"shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast",
          "sharpness"}
ENHANCE = {"brightness", "color", "contrast", "sharpness"}


def magnitude(op: str, level: torch.Tensor, bins: int, size: int, *, wide: bool = False) -> torch.Tensor:
    """The unsigned magnitude of ``op`` at bin ``level`` (float tensor) of ``bins``: shear rate,
    pixels, degrees, enhancement strength (the factor is 1 +- it), bits, or threshold."""
    t = level.double() / (bins - 1)  # 0 at the weakest bin, 1 at the strongest
    if op in ("shear_x", "shear_y"):
        return t * (0.99 if wide else 0.3)
    if op in ("translate_x", "translate_y"):
        return t * (32.0 if wide else 150.0 / 331.0 * size)
    if op == "rotate":
        return t * (135.0 if wide else 30.0)
    if op in ENHANCE:
        return t * (0.99 if wide else 0.9)
    if op == "posterize":
        return 8 - torch.round(t * (6 if wide else 4))
    if op == "solarize":
        return 255.0 * (1 - t)
    return torch.zeros_like(t)


def _signed(op: str, m: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """The value an operation is called with: a random sign where the op has one; enhancement
    factors are 1 +- the magnitude."""
    if op in SIGNED:
        m = torch.where(negative, -m, m)
    return 1.0 + m if op in ENHANCE else m


def _apply(x: torch.Tensor, names, op_index: torch.Tensor, value_of, *, masked: bool | None = None) -> torch.Tensor:
    """Run ``names[k]`` on the samples whose ``op_index`` is k (-1: none), with the values
    ``value_of(name)`` (N,); ``masked``: run each op on the whole batch and keep the chosen samples
    (default: on CUDA)."""
    if x.is_cuda if masked is None else masked:
        for k, name in enumerate(names):
            if name == "identity":
                continue
            chosen = (op_index == k).view(-1, 1, 1, 1)
            x = torch.where(chosen, OPS[name](x, value_of(name)), x)
        return x
    out = x.clone()
    for k, name in enumerate(names):
        rows = (op_index == k).nonzero().flatten()
        if name == "identity" or len(rows) == 0:
            continue
        out[rows] = OPS[name](x[rows], value_of(name)[rows])
    return out


def _check(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"automatic augmentation runs on uint8 (N, C, H, W) images, got {x.dtype} {tuple(x.shape)}")


@functools.lru_cache(maxsize=None)
def _policy_stage(stage: int, device: torch.device):
    """Stage ``stage`` of every sub-policy as tables on ``device`` (built once per device, not per
    batch): the distinct operation names, and per sub-policy its probability, bin and name index."""
    ops = [p[stage] for p in CIFAR10_POLICY]
    names = tuple(dict.fromkeys(name for name, _, _ in ops))
    return (names, torch.tensor([p for _, p, _ in ops], device=device, dtype=torch.float64),
            torch.tensor([b or 0 for _, _, b in ops], device=device, dtype=torch.float64),
            torch.tensor([names.index(name) for name, _, _ in ops], device=device))


def auto_augment(x: torch.Tensor, *, generator=None) -> torch.Tensor:
    """AutoAugment's CIFAR-10 policy, one sub-policy per sample."""
    _check(x)
    n, dev, size = len(x), x.device, x.shape[-1]
    sub = uniform_int(len(CIFAR10_POLICY), n, generator=generator, device=dev)
    for stage in range(2):
        fire = torch.rand(n, generator=generator, device=dev, dtype=torch.float64)
        negative = torch.rand(n, generator=generator, device=dev) < 0.5
        names, probs, levels, indices = _policy_stage(stage, dev)
        level = levels[sub]
        which = torch.where(fire < probs[sub], indices[sub], torch.full_like(sub, -1))
        x = _apply(x, names, which, lambda name: _signed(name, magnitude(name, level, AUTO_AUGMENT_BINS, size), negative))
    return x


def rand_augment(x: torch.Tensor, *, ops: int = RAND_AUGMENT_OPS, level: int = RAND_AUGMENT_LEVEL,
                 generator=None) -> torch.Tensor:
    """RandAugment: ``ops`` operations per sample, uniform over ``SPACE``, at bin ``level`` of 31."""
    _check(x)
    n, dev, size = len(x), x.device, x.shape[-1]
    levels = torch.full((n,), float(level), device=dev, dtype=torch.float64)
    for _ in range(ops):
        which = uniform_int(len(SPACE), n, generator=generator, device=dev)
        negative = torch.rand(n, generator=generator, device=dev) < 0.5
        x = _apply(x, SPACE, which, lambda name: _signed(name, magnitude(name, levels, RAND_AUGMENT_BINS, size), negative))
    return x


def trivial_augment(x: torch.Tensor, *, generator=None) -> torch.Tensor:
    """TrivialAugment-wide: one operation per sample, uniform over ``SPACE``, at a bin uniform over 31."""
    _check(x)
    n, dev, size = len(x), x.device, x.shape[-1]
    which = uniform_int(len(SPACE), n, generator=generator, device=dev)
    levels = uniform_int(RAND_AUGMENT_BINS, n, generator=generator, device=dev).double()
    negative = torch.rand(n, generator=generator, device=dev) < 0.5
    return _apply(x, SPACE, which,
                  lambda name: _signed(name, magnitude(name, levels, RAND_AUGMENT_BINS, size, wide=True), negative))
