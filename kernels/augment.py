"""Per-sample image transforms applied to a whole batch at once, on the batch's device.

Each sample gets its own random parameters, drawn in one call from the given generator; no Python
loop over samples. Images are (N, C, H, W), uint8 or float.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import sampling
from .mix import box_mask


def crop_flip(x: torch.Tensor, *, pad: int = 4, flip: bool = True, generator=None) -> torch.Tensor:
    """Zero-pad by ``pad``, take a random HxW crop per sample, flip horizontally with p=0.5.

    Crop and flip are one gather over the padded batch: output pixel (r, c) of sample n reads
    padded pixel (oy[n] + r, ox[n] + c), or (oy[n] + r, ox[n] + W - 1 - c) when flipped.
    """
    n, ch, h, w = x.shape
    dev = x.device
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad))
    hp, wp = h + 2 * pad, w + 2 * pad
    oy = sampling.uniform_int(2 * pad + 1, n, generator=generator, device=dev)
    ox = sampling.uniform_int(2 * pad + 1, n, generator=generator, device=dev)
    cols = torch.arange(w, device=dev).view(1, w)
    if flip:
        flipped = torch.rand(n, generator=generator, device=dev) < 0.5
        cols = torch.where(flipped.view(n, 1), (w - 1) - cols, cols)
    else:
        cols = cols.expand(n, w)
    rows = oy.view(n, 1) + torch.arange(h, device=dev).view(1, h)
    index = rows.view(n, h, 1) * wp + (ox.view(n, 1) + cols).view(n, 1, w)
    index = index.view(n, 1, h * w).expand(n, ch, h * w)
    return x.reshape(n, ch, hp * wp).gather(2, index).view(n, ch, h, w)


def cutout_boxes(n: int, height: int, width: int, size: int, *, generator=None, device=None):
    """Cutout boxes (DeVries & Taylor 2017): centre uniform over the image, side ``size``, clipped."""
    cy = sampling.uniform_int(height, n, generator=generator, device=device)
    cx = sampling.uniform_int(width, n, generator=generator, device=device)
    half = size // 2
    return ((cy - half).clamp(0, height), (cy - half + size).clamp(0, height),
            (cx - half).clamp(0, width), (cx - half + size).clamp(0, width))


def cutout(x: torch.Tensor, *, size: int = 16, holes: int = 1, fill: float = 0.0, generator=None) -> torch.Tensor:
    """Set ``holes`` random size x size squares per sample to ``fill`` (returns a new tensor in the
    input's memory format: an out-of-place masked_fill would turn channels_last into contiguous)."""
    n, _, h, w = x.shape
    mask = torch.zeros((n, 1, h, w), dtype=torch.bool, device=x.device)
    for _ in range(holes):
        mask |= box_mask(cutout_boxes(n, h, w, size, generator=generator, device=x.device), h, w, x.device)
    return x.clone(memory_format=torch.preserve_format).masked_fill_(mask, fill)


def channel_constants(values, device) -> torch.Tensor:
    """Per-channel statistics as a float32 (1, C, 1, 1) tensor on ``device``: build it once per
    pipeline, not per batch (each build is a blocking copy from host memory)."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean, std, *, dtype=torch.float32, channels_last: bool = True) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (x / 255 - mean) / std in ``dtype``, optionally channels_last.
    ``mean`` and ``std``: from :func:`channel_constants` (sequences are converted on each call)."""
    mean_t = mean if isinstance(mean, torch.Tensor) else channel_constants(mean, x.device)
    std_t = std if isinstance(std, torch.Tensor) else channel_constants(std, x.device)
    out = ((x.float() / 255.0 - mean_t) / std_t).to(dtype)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out.contiguous()


def one_hot(labels: torch.Tensor, num_classes: int, *, smoothing: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """Soft target rows: one-hot, optionally label-smoothed to (1 - eps) * onehot + eps / K."""
    y = F.one_hot(labels.long(), num_classes).to(dtype)
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y
