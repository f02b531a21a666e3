"""Optimisers and per-step learning-rate schedules (with linear warm-up)."""
from __future__ import annotations

import math

import torch


def build_optimizer(params, tc) -> torch.optim.Optimizer:
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, nesterov=tc.nesterov and tc.momentum > 0,
                               weight_decay=tc.weight_decay)
    return torch.optim.AdamW(params, lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)


def lr_factor(step: int, *, steps_per_epoch: int, tc) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based)."""
    epoch = step / steps_per_epoch  # fractional epoch, so schedules are smooth and resume exactly
    warm = tc.warmup_epochs
    if warm > 0 and epoch < warm:
        return (step + 1) / (warm * steps_per_epoch)
    if tc.schedule == "step":
        # whole epochs completed before this step; milestone m decays every step after m of them
        done = int(step // steps_per_epoch)
        return tc.lr_decay ** sum(done >= m for m in tc.milestones)
    if tc.schedule == "constant":
        return 1.0
    progress = min(max((epoch - warm) / max(tc.epochs - warm, 1e-8), 0.0), 1.0)
    floor = tc.min_lr_ratio
    if tc.schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (1 - floor) * (1 - progress)  # linear


def build_scheduler(optimizer, *, steps_per_epoch: int, tc) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch=steps_per_epoch, tc=tc))
