"""Evaluation over sharded pipelines: exact totals across processes, optional per-image outputs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from ..run.atomic import write_atomic

# the per-image outputs and their dtypes: every process must send the same dtypes and trailing
# shapes, or the gather fails (or hangs), including a process whose shard is empty
_INTEGER_KEYS = ("index", "labels")


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    count: int
    outputs: dict | None = None  # index-ordered numpy arrays: labels, logits, features (None off the gathering rank)
    teacher_accuracy: float | None = None  # with a teacher: its top-1 accuracy on the same images
    agreement: float | None = None  # with a teacher: the share of images where both predict the same class


def _trailing_dims(accelerator, local: dict[str, list]) -> dict[str, tuple]:
    """Each float output's per-image shape, agreed across processes (a process with no batches
    has none of its own)."""
    keys = [k for k in local if k not in _INTEGER_KEYS]
    mine = [local[k][0].shape[1] if local[k] else 0 for k in keys]
    dims = torch.tensor([mine], dtype=torch.int64, device=accelerator.device)
    if accelerator.num_processes > 1:
        dims = accelerator.gather(dims)
    agreed = dims.max(0).values.tolist()
    return {k: (d,) for k, d in zip(keys, agreed)}


def _concat(accelerator, local: dict[str, list]) -> dict[str, torch.Tensor]:
    dims = _trailing_dims(accelerator, local)
    out = {}
    for k, parts in local.items():
        dtype = torch.int64 if k in _INTEGER_KEYS else torch.float32
        out[k] = torch.cat(parts) if parts else torch.empty((0, *dims.get(k, ())), dtype=dtype,
                                                            device=accelerator.device)
    return out


def _gather_varlen(accelerator, t: torch.Tensor, pad_value, to_main: bool) -> torch.Tensor | None:
    """Concatenate tensors whose first dimension differs across processes: on every process, or
    (``to_main``) only on the main one, which spares the others holding the whole set."""
    if accelerator.num_processes == 1:
        return t
    t = accelerator.pad_across_processes(t, dim=0, pad_index=pad_value)
    if not to_main:
        return accelerator.gather(t)
    import torch.distributed as dist
    parts = [torch.empty_like(t) for _ in range(accelerator.num_processes)] if accelerator.is_main_process else None
    dist.gather(t, parts, dst=0)  # Accelerate's main process is rank 0
    return torch.cat(parts) if parts is not None else None


@torch.no_grad()
def evaluate(model, pipeline, accelerator, *, collect: bool = False, teacher=None, features: bool = True,
             gather_to: str = "all") -> EvalResult:
    """Top-1 accuracy and mean cross-entropy over every sample of ``pipeline`` exactly once.

    ``model`` is the bare (unwrapped) module. With ``collect``, logits (and, with ``features``,
    penultimate features) of every image are gathered in data-set order: on every process
    (``gather_to="all"``) or only on the main one (``"main"``; the others get ``outputs=None``).
    With ``teacher``, its logits and features are collected beside the student's, and its
    accuracy and the agreement of the two are counted (known on every process).
    """
    if gather_to not in ("all", "main"):
        raise ValueError(f"gather_to must be 'all' or 'main', got {gather_to!r}")
    was_training = model.training
    model.eval()
    dev = accelerator.device
    # loss sum, correct, count, teacher correct, agreements
    sums = torch.zeros(5, dtype=torch.float64, device=dev)
    keep: dict[str, list] = {"index": [], "labels": [], "logits": []} | ({"features": []} if features else {})
    if teacher is not None:
        keep |= {"teacher_logits": []} | ({"teacher_features": []} if features else {})
    for batch in pipeline:
        with accelerator.autocast():
            logits, feats = model.forward_with_features(batch.images)
        logits = logits.float()
        pred = logits.argmax(1)
        sums[0] += F.cross_entropy(logits, batch.labels, reduction="sum").double()
        sums[1] += (pred == batch.labels).sum()
        sums[2] += len(batch)
        if teacher is not None:
            with accelerator.autocast():
                t_logits, t_feats = teacher.forward_with_features(batch.images)
            t_pred = t_logits.argmax(1)
            sums[3] += (t_pred == batch.labels).sum()
            sums[4] += (t_pred == pred).sum()
        if collect:
            keep["index"].append(batch.index.long())
            keep["labels"].append(batch.labels.long())
            keep["logits"].append(logits)
            if features:
                keep["features"].append(feats.float())
            if teacher is not None:
                keep["teacher_logits"].append(t_logits.float())
                if features:
                    keep["teacher_features"].append(t_feats.float())
    model.train(was_training)
    sums = accelerator.reduce(sums, reduction="sum")
    loss_sum, correct, count, t_correct, agree = sums.tolist()
    outputs = _gathered(accelerator, keep, gather_to == "main") if collect else None
    count = int(count)
    n = max(count, 1)
    return EvalResult(correct / n, loss_sum / n, count, outputs, teacher_accuracy=t_correct / n if teacher is not None else None,
                      agreement=agree / n if teacher is not None else None)


def _gathered(accelerator, keep: dict[str, list], to_main: bool) -> dict | None:
    """The collected outputs of every process, in data-set order, as numpy arrays."""
    local = _concat(accelerator, keep)
    index = _gather_varlen(accelerator, local.pop("index"), -1, to_main)
    gathered = {k: _gather_varlen(accelerator, v, 0, to_main) for k, v in local.items()}
    if index is None:
        return None
    valid = index >= 0  # rows padded in for the gather
    order = torch.argsort(index[valid])
    outputs = {k: g[valid][order].cpu().numpy() for k, g in gathered.items()}
    outputs["index"] = index[valid][order].cpu().numpy()
    return outputs


def save_outputs(path, outputs: dict) -> None:
    """Per-image outputs as a compressed .npz (no pickled objects), written atomically."""
    write_atomic(path, lambda f: np.savez_compressed(f, **outputs), what="per-image outputs")
