"""Decoupled knowledge distillation (Zhao et al., CVPR 2022): ce_weight CE + w(epoch) T^2
(alpha TCKD + beta NCKD), w rising linearly to 1 over the first ``warmup`` epochs (epoch e of
1..warmup has weight e / warmup). Defaults: the paper's CIFAR-100 settings (alpha 1, beta 8, 20
warm-up epochs, CE weight 1; the paper uses T = 4: set distill.temperature=4). DKD weighs its
terms itself: distill.gamma only chooses distillation (> 0) over the from-scratch baseline (0)."""
from __future__ import annotations

from dataclasses import dataclass

from ..fields import AT_LEAST_ONE, NON_NEGATIVE, opt
from ..train.losses import dkd_loss, soft_cross_entropy, soft_rows
from .base import KDMethod


class DecoupledKD(KDMethod):
    name = "dkd"

    @dataclass
    class Options:
        alpha: float = opt(1.0, range=NON_NEGATIVE)  # weight of the target-class term (TCKD)
        beta: float = opt(8.0, range=NON_NEGATIVE)  # weight of the non-target-class term (NCKD)
        warmup: int = opt(20, range=AT_LEAST_ONE)  # epochs over which the KD terms' weight rises to 1
        ce_weight: float = opt(1.0, range=NON_NEGATIVE)

    def warmup_weight(self) -> float:
        return min((self.epoch + 1) / self.options.warmup, 1.0)

    def loss(self, student_logits, teacher_logits, targets):
        # DKD splits off the target class: of soft (mixed, smoothed) rows, their largest
        labels = targets.argmax(-1) if targets.dim() == 2 else targets
        o = self.options
        kd = dkd_loss(student_logits, teacher_logits, labels, alpha=o.alpha, beta=o.beta, temperature=self.temperature)
        return o.ce_weight * soft_cross_entropy(student_logits, soft_rows(targets, student_logits)) + \
            self.warmup_weight() * kd

    @classmethod
    def describe(cls, distill: dict) -> str:
        o = cls.recorded_options(distill)
        return (f"T = {distill['temperature']:g}, alpha = {o['alpha']:g}, beta = {o['beta']:g}, "
                f"warm-up {o['warmup']} epochs, CE weight {o['ce_weight']:g}")
