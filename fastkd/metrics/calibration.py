"""Calibration of softmax outputs: ECE and MCE over equal-width confidence bins, and NLL.

ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)| with confidence = max softmax, bins (lo, hi]
(Guo et al. 2017); MCE is the largest gap over non-empty bins.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._arrays import as_tensor


def reliability_bins(logits, labels, n_bins: int = 10) -> dict:
    """Per-bin count, mean confidence and accuracy (lists of length n_bins; empty bins count 0)."""
    z = as_tensor(logits).double()
    y = as_tensor(labels, dtype=torch.long, device=z.device)
    p = F.softmax(z, 1)
    conf, pred = p.max(1)
    correct = (pred == y).double()
    # bin b holds conf in (b/n, (b+1)/n]; conf is > 0 so nothing falls below bin 0
    idx = (torch.ceil(conf * n_bins) - 1).clamp(0, n_bins - 1).long()
    count = torch.bincount(idx, minlength=n_bins).double()
    conf_sum = torch.zeros(n_bins, dtype=torch.float64, device=z.device).index_add_(0, idx, conf)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64, device=z.device).index_add_(0, idx, correct)
    safe = count.clamp_min(1)
    return {"count": count.long().tolist(), "confidence": (conf_sum / safe).tolist(), "accuracy": (acc_sum / safe).tolist(),
            "edges": [b / n_bins for b in range(n_bins + 1)]}


def calibration(logits, labels, n_bins: int = 10) -> dict:
    """ECE, MCE, NLL and accuracy of ``logits`` (N, K) against integer ``labels``."""
    bins = reliability_bins(logits, labels, n_bins)
    n = sum(bins["count"])
    gaps = [abs(a - c) for a, c, k in zip(bins["accuracy"], bins["confidence"], bins["count"]) if k]
    ece = sum(abs(a - c) * k / n for a, c, k in zip(bins["accuracy"], bins["confidence"], bins["count"]))
    z = as_tensor(logits).double()
    y = as_tensor(labels, dtype=torch.long, device=z.device)
    return {"ece": ece, "mce": max(gaps) if gaps else 0.0, "nll": F.cross_entropy(z, y).item(),
            "accuracy": (z.argmax(1) == y).double().mean().item()}
