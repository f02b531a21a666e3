"""Training losses. All reductions run in float32 whatever the autocast dtype."""
from __future__ import annotations

import torch
import torch.nn.functional as F

REDUCTIONS = ("batchmean", "mean")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k targets_k * log softmax(logits)_k (targets are soft rows)."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
          reduction: str = "batchmean") -> torch.Tensor:
    """KL(softmax(t / T) || softmax(s / T)), summed over classes and averaged over the batch.

    ``reduction="mean"`` also divides by the number of classes, as PyTorch's KLDivLoss default
    did in the paper's code (Das et al. 2020); ``"batchmean"`` is Hinton et al.'s definition.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    log_ps = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum()
    denom = log_ps.shape[0] * (log_ps.shape[1] if reduction == "mean" else 1)
    return kl / denom


def kd_loss(student_logits, teacher_logits, targets, *, temperature: float, gamma: float,
            reduction: str = "batchmean") -> torch.Tensor:
    """gamma * T^2 * KL(p_t^T || p_s^T) + (1 - gamma) * CE(student, targets)  (Hinton et al. 2015).

    ``gamma = 0`` is plain training on the targets: the from-scratch student baseline.
    ``targets`` are soft rows (N, K) or integer class indices (N,).
    """
    if targets.dim() == 1:
        if targets.is_floating_point():
            raise ValueError(f"targets of shape {tuple(targets.shape)} are floats: pass soft rows (N, K) or integer "
                             "class indices (N,)")
        targets = F.one_hot(targets.long(), student_logits.shape[-1])
    elif targets.shape != student_logits.shape:
        raise ValueError(f"targets must be (N, K) = {tuple(student_logits.shape)} soft rows or (N,) class indices, "
                         f"got {tuple(targets.shape)}")
    ce = soft_cross_entropy(student_logits, targets)
    if gamma == 0:
        return ce
    kd = kd_kl(student_logits, teacher_logits, temperature, reduction)
    return gamma * temperature ** 2 * kd + (1.0 - gamma) * ce
