"""T. stddev of a teacher under a view, with no student: Wang et al.'s way of ranking
augmentations before any distillation (their code runs KD with learning rate 0 for 10 epochs and
reads the statistic off the teacher). The teacher sees exactly the training stream a student run
of ``cfg`` would (its data, augmentation, seed, batch size and backend), epoch after epoch."""
from __future__ import annotations

import functools
from types import SimpleNamespace

import torch

from ..metrics.teacher_stddev import WANG_CHUNK, TeacherMeanProbability
from .runsetup import build_run_setup
from .teacher import load_teacher


def probe_teacher_stddev(cfg, *, epochs: int = 10, device="cpu", chunk: int = WANG_CHUNK) -> dict:
    """{"value", "chunks", "chunk_size", "view", "epochs"} for ``cfg.distill.teacher`` over ``epochs``
    epochs of ``cfg``'s training stream."""
    device = torch.device(device)
    place = SimpleNamespace(device=device, process_index=0, num_processes=1)  # one process, no Accelerate
    setup = build_run_setup(cfg, place, eval_sets=(), teacher_loader=functools.partial(
        load_teacher, cfg.distill.teacher, device=device))
    taught = TeacherMeanProbability(chunk)
    with torch.no_grad():
        for epoch in range(epochs):
            setup.train_pipe.set_epoch(epoch)
            for batch in setup.train_pipe:
                taught.update(setup.teacher(batch.images))
    return {"value": taught.value(), "chunks": taught.count, "chunk_size": chunk, "view": cfg.augment,
            "epochs": epochs}
