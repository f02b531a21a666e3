"""Hinton KD on standardised logits (Sun et al., CVPR 2024): gamma lskd_loss + (1 - gamma) CE,
the KD term computed on each row's z-scored logits so the student matches the teacher's logit
relations, not their scale."""
from __future__ import annotations

from ..train.losses import lskd_loss, soft_cross_entropy, soft_rows
from .base import KDMethod


class StandardisedKD(KDMethod):
    name = "lskd"

    def loss(self, student_logits, teacher_logits, targets):
        kd = lskd_loss(student_logits, teacher_logits, temperature=self.temperature)
        return self.gamma * kd + (1 - self.gamma) * soft_cross_entropy(student_logits, soft_rows(targets, student_logits))

    @classmethod
    def describe(cls, distill: dict) -> str:
        return f"T = {distill['temperature']:g}, gamma = {distill['gamma']:g}, logits standardised"
