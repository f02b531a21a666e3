"""MixUp and CutMix on whole batches, on the batch's device.

Contract shared by every pipeline backend: images ``x`` (N, C, H, W) float, soft targets ``y``
(N, K); each sample is mixed with partner ``perm[i]`` where ``perm`` is a random permutation of
the batch; the inputs are never modified; new ``(x, y)`` are returned.

- MixUp (Zhang et al. 2018): x = lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha).
- CutMix (Yun et al. 2019): a box of side sqrt(1 - lam) times the image side, centre uniform over
  the image, clipped at the border, is pasted from x[perm]; lam is then recomputed from the
  clipped box area, so the soft target matches the pixel share exactly.

``per_sample=False`` draws one lam (and one box) per batch, as the paper's code did;
``per_sample=True`` draws one per sample.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import sampling


class MixParams(NamedTuple):
    """What a mixing call drew: lam per sample (N,) and the partner permutation (N,)."""

    lam: torch.Tensor
    perm: torch.Tensor


def _check(x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if y.dim() != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"targets must be soft labels (N, K) with N={x.shape[0]}, got shape {tuple(y.shape)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")


def _draw_lam(alpha: float, n: int, per_sample: bool, generator, device) -> torch.Tensor:
    lam = sampling.beta(alpha, alpha, n if per_sample else 1, generator=generator, device=device)
    return lam if per_sample else lam.expand(n)


def _mix_targets(y: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    lam = lam.to(y.dtype).unsqueeze(1)
    return lam * y + (1.0 - lam) * y[perm]


def mixup(x, y, alpha, *, per_sample=False, generator=None, return_params=False):
    """MixUp a batch; see the module docstring. Returns (x, y) or (x, y, MixParams)."""
    _check(x, y, alpha)
    n = x.shape[0]
    lam = _draw_lam(alpha, n, per_sample, generator, x.device)
    perm = torch.randperm(n, generator=generator, device=x.device)
    w = lam.to(x.dtype).view(n, 1, 1, 1)
    x_out = w * x + (1.0 - w) * x[perm]
    y_out = _mix_targets(y, lam, perm)
    return (x_out, y_out, MixParams(lam, perm)) if return_params else (x_out, y_out)


def cutmix_boxes(lam: torch.Tensor, height: int, width: int, *, generator=None):
    """Boxes (y1, y2, x1, x2), each (N,) long, for the requested lam (N,), clipped at the border.

    Follows the CutMix reference: cut = int(side * sqrt(1 - lam)), centre uniform over the pixels,
    box = [centre - cut // 2, centre + cut // 2) clipped to the image.
    """
    ratio = torch.sqrt((1.0 - lam.double()).clamp_min(0.0))
    cut_h = (height * ratio).long()
    cut_w = (width * ratio).long()
    n = lam.shape[0]
    cy = sampling.uniform_int(height, n, generator=generator, device=lam.device)
    cx = sampling.uniform_int(width, n, generator=generator, device=lam.device)
    y1 = (cy - cut_h // 2).clamp(0, height)
    y2 = (cy + cut_h // 2).clamp(0, height)
    x1 = (cx - cut_w // 2).clamp(0, width)
    x2 = (cx + cut_w // 2).clamp(0, width)
    return y1, y2, x1, x2


def box_mask(boxes, height: int, width: int, device) -> torch.Tensor:
    """Boolean mask (N, 1, H, W), True inside each sample's box [y1, y2) x [x1, x2)."""
    y1, y2, x1, x2 = boxes
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = (rows >= y1.view(-1, 1, 1)) & (rows < y2.view(-1, 1, 1)) & (cols >= x1.view(-1, 1, 1)) & (cols < x2.view(-1, 1, 1))
    return inside.unsqueeze(1)


def cutmix(x, y, alpha, *, per_sample=False, prob=1.0, generator=None, return_params=False):
    """CutMix a batch; see the module docstring. ``prob`` is the chance that a batch (or, with
    ``per_sample``, a sample) is mixed at all. Returns (x, y) or (x, y, MixParams) where
    ``lam`` is the area-corrected share of each sample's own pixels."""
    _check(x, y, alpha)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"cutmix prob must be in [0, 1], got {prob}")
    n, _, h, w = x.shape
    lam = _draw_lam(alpha, n, per_sample, generator, x.device)
    if prob < 1.0:
        skip = torch.rand(n if per_sample else 1, generator=generator, device=x.device) >= prob
        lam = torch.where(skip.expand(n), torch.ones_like(lam), lam)
    perm = torch.randperm(n, generator=generator, device=x.device)
    if not per_sample:
        boxes = cutmix_boxes(lam[:1], h, w, generator=generator)
        boxes = tuple(b.expand(n) for b in boxes)
    else:
        boxes = cutmix_boxes(lam, h, w, generator=generator)
    mask = box_mask(boxes, h, w, x.device)
    x_out = torch.where(mask, x[perm], x)
    y1, y2, x1, x2 = boxes
    lam_area = 1.0 - ((y2 - y1) * (x2 - x1)).double() / float(h * w)
    y_out = _mix_targets(y, lam_area, perm)
    return (x_out, y_out, MixParams(lam_area.float(), perm)) if return_params else (x_out, y_out)
