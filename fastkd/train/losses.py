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


def soft_rows(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Targets as soft rows (N, K): given as such, or as integer class indices (N,)."""
    if targets.dim() == 1:
        if targets.is_floating_point():
            raise ValueError(f"targets of shape {tuple(targets.shape)} are floats: pass soft rows (N, K) or integer "
                             "class indices (N,)")
        return F.one_hot(targets.long(), logits.shape[-1])
    if targets.shape != logits.shape:
        raise ValueError(f"targets must be (N, K) = {tuple(logits.shape)} soft rows or (N,) class indices, "
                         f"got {tuple(targets.shape)}")
    return targets


def kd_loss(student_logits, teacher_logits, targets, *, temperature: float, gamma: float,
            reduction: str = "batchmean") -> torch.Tensor:
    """gamma * T^2 * KL(p_t^T || p_s^T) + (1 - gamma) * CE(student, targets)  (Hinton et al. 2015).

    ``gamma = 0`` is plain training on the targets: the from-scratch student baseline.
    ``targets`` are soft rows (N, K) or integer class indices (N,).
    """
    ce = soft_cross_entropy(student_logits, soft_rows(targets, student_logits))
    if gamma == 0:
        return ce
    kd = kd_kl(student_logits, teacher_logits, temperature, reduction)
    return gamma * temperature ** 2 * kd + (1.0 - gamma) * ce


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, alpha: float,
             beta: float, temperature: float) -> torch.Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022), mean over the batch:
    T^2 (alpha TCKD + beta NCKD), where TCKD = KL(b_t || b_s) over the binary split (target class,
    all others) of softmax(z / T), and NCKD = KL(p^_t || p^_s) over the softmax of the non-target
    classes alone (the paper's Eq. 1-5; T^2 as its reference code scales the terms). Computed in
    log space: the paper's KD = TCKD + (1 - p_target) NCKD holds to rounding."""
    if labels.dim() != 1:
        raise ValueError(f"labels must be (N,) class indices, got shape {tuple(labels.shape)}")
    s, t = student_logits.float() / temperature, teacher_logits.float() / temperature
    target = F.one_hot(labels.long(), s.shape[-1]).bool()
    log_ps, log_pt = F.log_softmax(s, -1), F.log_softmax(t, -1)
    # binary split: log p_target, and log (1 - p_target) as the log-sum of the other classes' probabilities
    log_rest_s = torch.logsumexp(log_ps.masked_fill(target, float("-inf")), -1)
    log_rest_t = torch.logsumexp(log_pt.masked_fill(target, float("-inf")), -1)
    log_bs = torch.stack([log_ps[target], log_rest_s], -1)
    log_bt = torch.stack([log_pt[target], log_rest_t], -1)
    tckd = (log_bt.exp() * (log_bt - log_bs)).sum(-1)
    # the non-target classes renormalised: a softmax with the target class left out
    log_qs = F.log_softmax(s.masked_fill(target, float("-inf")), -1)
    log_qt = F.log_softmax(t.masked_fill(target, float("-inf")), -1)
    qt = log_qt.exp()
    nckd = torch.where(target, torch.zeros_like(qt), qt * (log_qt - log_qs)).sum(-1)
    return temperature ** 2 * (alpha * tckd + beta * nckd).mean()


def standardize_logits(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score of each row of logits (Sun et al., CVPR 2024): (z - mean) / (eps + std), with the
    sample (n - 1) standard deviation as the authors' code computes it."""
    z = logits.float()
    return (z - z.mean(-1, keepdim=True)) / (eps + z.std(-1, keepdim=True))


def lskd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """KD on standardised logits (Sun et al., CVPR 2024, "Logit Standardization in Knowledge
    Distillation"): T^2 KL(softmax(Z(t) / T) || softmax(Z(s) / T)), summed over classes and
    averaged over the batch."""
    return temperature ** 2 * kd_kl(standardize_logits(student_logits), standardize_logits(teacher_logits),
                                    temperature, "batchmean")
