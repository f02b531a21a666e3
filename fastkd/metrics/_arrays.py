"""Accept numpy arrays or torch tensors alike."""
from __future__ import annotations

import numpy as np
import torch


def as_tensor(x, dtype=None, device=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device if device is not None else t.device, dtype=dtype or t.dtype)


def check_features(features, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_tensor(features)
    y = as_tensor(labels, dtype=torch.long, device=x.device)
    if x.dim() != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be (N,) with N={x.shape[0]}, got shape {tuple(y.shape)}")
    return x, y
