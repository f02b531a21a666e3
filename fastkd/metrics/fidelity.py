"""Teacher-student fidelity (Stanton et al. 2021, "Does knowledge distillation really work?")."""
from __future__ import annotations

import torch.nn.functional as F

from ._arrays import as_tensor


def fidelity(teacher_logits, student_logits, *, temperature: float = 1.0) -> dict:
    """Top-1 agreement and mean KL(p_teacher || p_student) at ``temperature`` (1 in the paper)."""
    t = as_tensor(teacher_logits).double()
    s = as_tensor(student_logits, device=t.device).double()
    if t.shape != s.shape or t.dim() != 2:
        raise ValueError(f"teacher and student logits must both be (N, K), got {tuple(t.shape)} and {tuple(s.shape)}")
    log_pt = F.log_softmax(t / temperature, 1)
    log_ps = F.log_softmax(s / temperature, 1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    return {"agreement": (t.argmax(1) == s.argmax(1)).double().mean().item(), "kl": kl.item()}
