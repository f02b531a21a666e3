"""Evaluation over sharded pipelines: exact totals across processes, optional per-image outputs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    count: int
    outputs: dict | None = None  # index-ordered numpy arrays: labels, logits, features


def _gather_varlen(accelerator, t: torch.Tensor, pad_value) -> torch.Tensor:
    """Gather tensors whose first dimension differs across processes."""
    if accelerator.num_processes == 1:
        return t
    t = accelerator.pad_across_processes(t, dim=0, pad_index=pad_value)
    return accelerator.gather(t)


@torch.no_grad()
def evaluate(model, pipeline, accelerator, *, collect: bool = False, teacher=None) -> EvalResult:
    """Top-1 accuracy and mean cross-entropy over every sample of ``pipeline`` exactly once.

    ``model`` is the bare (unwrapped) module. With ``collect``, logits and penultimate features
    of every image are gathered (in data-set order) on every process; with ``teacher``, the
    teacher's logits and features are collected beside the student's.
    """
    was_training = model.training
    model.eval()
    dev = accelerator.device
    sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, correct, count
    keep: dict[str, list] = {"index": [], "labels": [], "logits": [], "features": []}
    if teacher is not None:
        keep |= {"teacher_logits": [], "teacher_features": []}
    for batch in pipeline:
        with accelerator.autocast():
            logits, feats = model.forward_with_features(batch.images)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, batch.labels, reduction="sum").double()
        sums[1] += (logits.argmax(1) == batch.labels).sum()
        sums[2] += len(batch)
        if collect:
            keep["index"].append(batch.index.long())
            keep["labels"].append(batch.labels.long())
            keep["logits"].append(logits)
            keep["features"].append(feats.float())
            if teacher is not None:
                with accelerator.autocast():
                    t_logits, t_feats = teacher.forward_with_features(batch.images)
                keep["teacher_logits"].append(t_logits.float())
                keep["teacher_features"].append(t_feats.float())
    model.train(was_training)
    sums = accelerator.reduce(sums, reduction="sum")
    loss_sum, correct, count = sums.tolist()
    outputs = None
    if collect:
        local = {k: torch.cat(v) if v else torch.empty(0, device=dev) for k, v in keep.items()}
        index = _gather_varlen(accelerator, local["index"], -1)
        valid = index >= 0
        order = torch.argsort(index[valid])
        outputs = {}
        for k, v in local.items():
            if k == "index":
                continue
            g = _gather_varlen(accelerator, v, 0)[valid][order]
            outputs[k] = g.cpu().numpy()
        outputs["index"] = index[valid][order].cpu().numpy()
    count = int(count)
    return EvalResult(correct / max(count, 1), loss_sum / max(count, 1), count, outputs)


def save_outputs(path, outputs: dict) -> None:
    """Per-image outputs as a compressed .npz (no pickled objects), written atomically."""
    from .atomic import write_atomic
    write_atomic(path, lambda f: np.savez_compressed(f, **outputs), what="per-image outputs")
