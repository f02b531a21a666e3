"""Random variates drawn on the batch's device from an explicit ``torch.Generator``.

torch's own Beta/Gamma samplers cannot take a generator, so a seeded run could not control them.
Gamma variates here use Marsaglia & Tsang (2000), "A simple method for generating gamma variables",
vectorised with a fixed number of proposal rounds so nothing forces a host sync.
"""
from __future__ import annotations

import torch

# Acceptance probability per round is > 0.95 for shape >= 1, so 16 rounds all failing has
# probability < 1e-20; in that (practically impossible) case the last proposal is used.
_ROUNDS = 16


def _gamma(shape: float, n: int, generator, device) -> torch.Tensor:
    """n Gamma(shape, 1) variates in float64."""
    if shape <= 0:
        raise ValueError(f"gamma shape must be > 0, got {shape}")
    boost = shape < 1.0  # Gamma(a) = Gamma(a + 1) * U**(1/a) for a < 1 (Marsaglia & Tsang, sec. 6)
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    kw = dict(generator=generator, device=device, dtype=torch.float64)
    z = torch.randn((_ROUNDS, n), **kw)
    u = torch.rand((_ROUNDS, n), **kw)
    v = (1.0 + c * z) ** 3
    ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
    # index of the first accepted round per column (the last round when none was accepted)
    rounds = torch.arange(_ROUNDS, device=device).unsqueeze(1).expand(_ROUNDS, n)
    first = torch.where(ok, rounds, torch.full_like(rounds, _ROUNDS - 1)).min(dim=0).values
    g = d * v.gather(0, first.unsqueeze(0)).squeeze(0).clamp_min(1e-300)
    if boost:
        g = g * torch.rand(n, **kw).clamp_min(1e-300) ** (1.0 / shape)
    return g


def _draw_device(generator, device) -> torch.device:
    """Where to draw: ``device`` if given, else the generator's (a CUDA generator draws only there)."""
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return torch.device(device)


def beta(alpha: float, beta_: float, n: int, *, generator=None, device=None) -> torch.Tensor:
    """n Beta(alpha, beta_) variates (float64, so values near 1 are not rounded to 1) on ``device``."""
    device = _draw_device(generator, device)
    ga = _gamma(alpha, n, generator, device)
    gb = _gamma(beta_, n, generator, device)
    return ga / (ga + gb)


def uniform_int(high, n: int, *, generator=None, device=None) -> torch.Tensor:
    """n integers uniform in [0, high) (``high`` a Python int or an int tensor of shape (n,))."""
    u = torch.rand(n, generator=generator, device=_draw_device(generator, device), dtype=torch.float64)
    if isinstance(high, torch.Tensor):
        return torch.minimum((u * high).long(), high - 1)
    return (u * high).long().clamp_max(high - 1)
