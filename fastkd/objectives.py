"""What a run minimises, as an object the training loop is given (the loop does not know which
method it runs): cross-entropy on soft targets for teachers and from-scratch students, knowledge
distillation against a frozen teacher for students.

A new method (a cached teacher, a feature-matching loss) is a new class with ``loss`` and, when
it has a teacher network, ``teacher`` for evaluation to collect its outputs.
"""
from __future__ import annotations

import torch

from .losses import kd_loss, soft_cross_entropy


class SoftTargets:
    """Cross-entropy on the batch's soft targets (mixed, smoothed or one-hot)."""

    teacher = None

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        return soft_cross_entropy(logits, batch.targets)


class Distillation:
    """gamma T^2 KL(teacher^T || student^T) + (1 - gamma) CE (Hinton et al. 2015) against a frozen
    teacher in eval mode, run under autocast on the same (possibly mixed) batch as the student."""

    def __init__(self, teacher: torch.nn.Module, *, temperature: float, gamma: float, reduction: str,
                 autocast, forward=None):
        self.teacher = teacher
        self.forward = forward or teacher
        self.temperature, self.gamma, self.reduction = temperature, gamma, reduction
        self.autocast = autocast

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            t_logits = self.forward(batch.images)
        return kd_loss(logits, t_logits, batch.targets, temperature=self.temperature, gamma=self.gamma,
                       reduction=self.reduction)


class CachedDistillation:
    """The same loss with the teacher's logits read from a table computed once
    (``fastkd.teacher_cache``): row i holds the teacher's logits for sample i of the split."""

    teacher = None

    def __init__(self, table: torch.Tensor, *, temperature: float, gamma: float, reduction: str):
        self.table = table
        self.temperature, self.gamma, self.reduction = temperature, gamma, reduction

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        t_logits = self.table[batch.index.to(self.table.device)].to(logits.device)
        return kd_loss(logits, t_logits, batch.targets, temperature=self.temperature, gamma=self.gamma,
                       reduction=self.reduction)


def objective_for(cfg, teacher, *, autocast, compile_fn=None, cached_logits: torch.Tensor | None = None):
    """The objective of a run: distillation when it has a teacher and gamma > 0, reading the
    teacher's outputs from ``cached_logits`` when given."""
    if teacher is None or cfg.distill.gamma == 0:
        return SoftTargets()
    if cached_logits is not None:
        d = cfg.distill
        return CachedDistillation(cached_logits, temperature=d.temperature, gamma=d.gamma, reduction=d.reduction)
    d = cfg.distill
    return Distillation(teacher, temperature=d.temperature, gamma=d.gamma, reduction=d.reduction, autocast=autocast,
                        forward=compile_fn(teacher) if compile_fn else None)
