"""Hinton et al. 2015 knowledge distillation, with the paper's KL reduction as an option:
gamma T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - gamma) CE (fastkd.train.losses.kd_loss)."""
from __future__ import annotations

from ..train.losses import kd_loss
from .base import KDMethod


class HintonKD(KDMethod):
    name = "kd"

    def loss(self, student_logits, teacher_logits, targets):
        return kd_loss(student_logits, teacher_logits, targets, temperature=self.temperature, gamma=self.gamma,
                       reduction=self.reduction)

    @classmethod
    def describe(cls, distill: dict) -> str:
        return f"{super().describe(distill)}, KL reduction {distill['reduction']}"
