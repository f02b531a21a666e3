"""What a run minimises, as an object the training loop is given (the loop does not know which
method it runs): cross-entropy on soft targets for teachers and from-scratch students, knowledge
distillation against a frozen teacher for students.

Which distillation loss is computed is the method's (fastkd.distill, ``distill.method``); these
classes say where the teacher's logits come from: the teacher network run on the batch, or the
teacher-output cache.
"""
from __future__ import annotations

import torch

from ..distill import method_for
from .losses import soft_cross_entropy


def _unobserved(logits: torch.Tensor) -> None:
    """The ``observe`` of a run that keeps no statistics of the teacher's outputs."""


class SoftTargets:
    """Cross-entropy on the batch's soft targets (mixed, smoothed or one-hot)."""

    teacher = None

    def set_epoch(self, epoch: int) -> None:
        pass

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        return soft_cross_entropy(logits, batch.targets)


class Distillation:
    """A distillation method's loss (fastkd.distill) against a frozen teacher in eval mode, run
    under autocast on the same (possibly mixed) batch as the student. ``observe`` is handed the
    teacher's logits of every training batch (for statistics of what the student was taught)."""

    def __init__(self, teacher: torch.nn.Module, method, *, autocast, forward=None, observe=None):
        self.teacher = teacher
        self.forward = forward or teacher
        self.method = method
        self.autocast = autocast
        self.observe = observe or _unobserved

    def set_epoch(self, epoch: int) -> None:
        self.method.set_epoch(epoch)

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            t_logits = self.forward(batch.images)
        self.observe(t_logits)
        return self.method.loss(logits, t_logits, batch.targets)


class CachedDistillation:
    """The same loss with the teacher's logits read from a table computed once
    (``fastkd.train.teacher_cache``): row i holds the teacher's logits for sample i of the split."""

    teacher = None

    def __init__(self, table: torch.Tensor, method, *, observe=None):
        self.table = table
        self.method = method
        self.observe = observe or _unobserved

    def set_epoch(self, epoch: int) -> None:
        self.method.set_epoch(epoch)

    def loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        t_logits = self.table[batch.index.to(self.table.device)].to(logits.device)
        self.observe(t_logits)
        return self.method.loss(logits, t_logits, batch.targets)


def objective_for(cfg, teacher, *, autocast, compile_fn=None, cached_logits: torch.Tensor | None = None,
                  observe=None):
    """The objective of a run: its distillation method when it has a teacher and gamma > 0,
    reading the teacher's outputs from ``cached_logits`` when given; ``observe`` sees the teacher
    logits of every training batch."""
    if teacher is None or cfg.distill.gamma == 0:
        return SoftTargets()
    method = method_for(cfg.distill)
    if cached_logits is not None:
        return CachedDistillation(cached_logits, method, observe=observe)
    return Distillation(teacher, method, autocast=autocast, forward=compile_fn(teacher) if compile_fn else None,
                        observe=observe)
