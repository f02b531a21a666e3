"""The image operations of the automatic augmentation policies, batched: every sample of a uint8
(N, C, H, W) batch gets its own magnitude, on the batch's device, with no loop over samples.

The operations follow their PIL definitions, which AutoAugment (Cubuk et al. 2019), RandAugment
(Cubuk et al. 2020) and TrivialAugment (Mueller & Hutter 2021) were defined with:
- geometric (``shear_x/y``, ``translate_x/y``, ``rotate``): an affine map of the output pixel
  centres to input coordinates, nearest neighbour, zeros outside the image. Shears are about the
  top-left corner and translations in pixels, as PIL's ``Image.transform(AFFINE)`` in the
  policies' original code; rotation is about the centre, degrees counter-clockwise.
- enhancements (``brightness``, ``color``, ``contrast``, ``sharpness``): PIL's ImageEnhance, a
  blend ``degenerate + factor * (image - degenerate)`` with a degenerate image of black, the
  grey-scale image, its mean grey level, or the image smoothed by PIL's SMOOTH kernel.
- pixel maps (``posterize``, ``solarize``, ``autocontrast``, ``equalize``, ``invert``):
  PIL's ImageOps, per channel where PIL works per channel.
Each op is ``op(x, m) -> x`` with ``m`` (N,) float (the signed magnitude: shear rate, pixels,
degrees, enhancement factor, bits, threshold; ignored by the ops without one).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma, PIL's ``convert("L")`` (N, 1, H, W) float, rounded as PIL rounds it."""
    if x.shape[1] == 1:
        return x.float()
    r, g, b = x[:, 0:1].float(), x[:, 1:2].float(), x[:, 2:3].float()
    return torch.floor((r * 299 + g * 587 + b * 114 + 500) / 1000)


def _to_uint8(y: torch.Tensor) -> torch.Tensor:
    """PIL truncates blended values towards zero."""
    return y.clamp_(0, 255).trunc_().to(torch.uint8)


def _blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.float().view(-1, 1, 1, 1)
    return _to_uint8(degenerate + f * (x.float() - degenerate))


def _affine(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` at ``m @ (col, row, 1)`` of every output pixel centre (``m``: (N, 2, 3) in pixel
    units), nearest neighbour, zero outside."""
    n, _, h, w = x.shape
    dev = x.device
    cols = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    rows = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(rows, cols, indexing="ij")
    points = torch.stack([xx, yy, torch.ones_like(xx)], -1).view(1, h * w, 3)
    src = points @ m.float().transpose(1, 2)  # (N, H*W, 2): input (x, y) of each output pixel
    grid = torch.stack([2 * src[..., 0] / w - 1, 2 * src[..., 1] / h - 1], -1).view(n, h, w, 2)
    out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_().to(torch.uint8)


def _maps(n: int, device) -> torch.Tensor:
    return torch.tensor([[1.0, 0, 0], [0, 1, 0]], device=device).repeat(n, 1, 1)


def _one_entry(x, m, row: int, col: int):
    """The identity map with entry (row, col) set to ``m`` per sample: a shear or a translation."""
    a = _maps(len(x), x.device)
    a[:, row, col] = m
    return _affine(x, a)


def shear_x(x, m):
    return _one_entry(x, m, 0, 1)  # x_in = x + m * y


def shear_y(x, m):
    return _one_entry(x, m, 1, 0)


def translate_x(x, m):
    return _one_entry(x, m, 0, 2)


def translate_y(x, m):
    return _one_entry(x, m, 1, 2)


def rotate(x, m):
    """Counter-clockwise by ``m`` degrees about the centre (the output pixel at angle phi reads the
    input at angle phi - m)."""
    h, w = x.shape[2:]
    t = m.double() * math.pi / 180
    cos, sin = torch.cos(t).float(), torch.sin(t).float()
    cx, cy = w / 2, h / 2
    a = _maps(len(x), x.device)
    # image rows grow downwards, so a counter-clockwise turn on screen is clockwise in (x, y)
    a[:, 0, 0], a[:, 0, 1] = cos, -sin
    a[:, 1, 0], a[:, 1, 1] = sin, cos
    a[:, 0, 2] = cx - cos * cx + sin * cy
    a[:, 1, 2] = cy - sin * cx - cos * cy
    return _affine(x, a)


def brightness(x, m):
    return _blend(x, torch.zeros((), device=x.device), m)


def color(x, m):
    return _blend(x, _grey(x), m)


def contrast(x, m):
    mean = torch.floor(_grey(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5)  # PIL: int(mean + 0.5)
    return _blend(x, mean, m)


def sharpness(x, m):
    """PIL's SMOOTH filter (centre 5, neighbours 1, / 13) as the degenerate image; the border
    pixels keep their values, as in PIL."""
    c = x.shape[1]
    kernel = torch.ones((c, 1, 3, 3), device=x.device)
    kernel[:, :, 1, 1] = 5
    smooth = torch.floor(F.conv2d(x.float(), kernel, groups=c) / 13 + 0.5)
    degenerate = x.float().clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(x, degenerate, m)


def posterize(x, m):
    """Keep the ``m`` high bits of every channel."""
    bits = m.round().long().clamp(0, 8)
    mask = (torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits) & 255).to(torch.uint8).view(-1, 1, 1, 1)
    return x & mask


def solarize(x, m):
    """Invert every value at or above the threshold ``m``."""
    return torch.where(x.float() >= m.float().view(-1, 1, 1, 1), 255 - x, x)


def invert(x, m=None):
    return 255 - x


def autocontrast(x, m=None):
    """Stretch each channel to 0..255 (a constant channel is left alone)."""
    lo = x.amin(dim=(2, 3), keepdim=True).double()
    hi = x.amax(dim=(2, 3), keepdim=True).double()
    scale = 255.0 / (hi - lo).clamp_min(1)
    y = torch.trunc(x.double() * scale - lo * scale)  # PIL's lookup table, in its arithmetic
    return torch.where(hi > lo, y.clamp_(0, 255).to(torch.uint8), x)


def equalize(x, m=None):
    """PIL's histogram equalisation, per channel: with h the histogram and step = (pixels - count
    of the highest value present) // 255, value i maps to (step // 2 + pixels below i) // step;
    a channel with step 0 is left alone."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w).long()
    hist = torch.zeros((n * c, 256), dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    top = 255 - (hist.flip(1) > 0).long().argmax(1, keepdim=True)  # the highest value present
    step = (h * w - hist.gather(1, top)) // 255
    below = hist.cumsum(1) - hist  # pixels strictly below each value
    lut = ((step // 2 + below) // step.clamp_min(1)).clamp_max(255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device).expand(n * c, 256))
    return lut.gather(1, flat).to(torch.uint8).view(n, c, h, w)


def identity(x, m=None):
    return x


OPS = {
    "identity": identity, "shear_x": shear_x, "shear_y": shear_y, "translate_x": translate_x,
    "translate_y": translate_y, "rotate": rotate, "brightness": brightness, "color": color,
    "contrast": contrast, "sharpness": sharpness, "posterize": posterize, "solarize": solarize,
    "autocontrast": autocontrast, "equalize": equalize, "invert": invert,
}
