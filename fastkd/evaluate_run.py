"""``fastkd eval RUN``: re-evaluate a finished run's final weights."""
from __future__ import annotations

import torch

from . import checkpoint as ckpt
from . import models
from .config import from_dict, load_yaml, merge_layers, parse_override
from .data import load_splits
from .engine import backend_options, make_accelerator, pipeline_layout
from .evaluate import evaluate
from .pipelines import backend_reads, build_pipeline
from .pipelines import require as require_backend
from .pipelines.spec import make_spec
from .rundir import RunDir, write_json


def evaluate_run(run_path, *, split: str = "test", overrides=()) -> dict:
    rd = RunDir(run_path)
    if not rd.config.is_file():
        raise ckpt.CheckpointError(f"{run_path}: not a fastkd run directory (no config.yaml)")
    if not rd.model.is_file():
        raise ckpt.CheckpointError(f"{rd.model} not found: the run has not finished; rerun its command to complete it")
    saved = load_yaml(rd.config.read_text(), str(rd.config)) or {}
    cfg = from_dict(merge_layers(saved, *[parse_override(o) for o in overrides]))  # overrides validated like train's
    require_backend(cfg.data.backend)
    acc = make_accelerator(cfg)
    data = load_splits(cfg.data, reads=backend_reads(cfg.data.backend))
    if split not in data:
        raise ckpt.CheckpointError(f"--split {split}: this run has no {split} split (splits: {', '.join(data)})")
    model = models.create(cfg.model, data["train"].num_classes)
    ckpt.load_weights(model, rd.model, model_name=cfg.model, num_classes=data["train"].num_classes,
                      classes=data["train"].classes)
    model = model.to(acc.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    pipe = build_pipeline(cfg.data.backend, data[split], make_spec("none"), train=False,
                          layout=pipeline_layout(cfg, acc, batch_size=cfg.data.eval_batch_size),
                          options=backend_options(cfg))
    r = evaluate(model, pipe, acc)
    result = {"run": str(rd.path), "model": cfg.model, "split": split, "accuracy": r.accuracy, "loss": r.loss,
              "examples": r.count}
    if acc.is_main_process:
        write_json(rd.path / f"eval_{split}.json", result)
    return result
