"""``fastkd eval RUN``: re-evaluate a finished run's final weights (the same setup as training)."""
from __future__ import annotations

from ..run import checkpoint as ckpt
from ..config import from_dict, load_yaml, merge_layers, parse_override
from .accelerator import make_accelerator
from ..errors import CheckpointError
from .evaluate import evaluate
from ..pipelines import require as require_backend
from ..run.rundir import RunDir, write_json
from .runsetup import build_run_setup


def evaluate_run(run_path, *, split: str = "test", overrides=()) -> dict:
    rd = RunDir(run_path)
    if not rd.config.is_file():
        raise CheckpointError(f"{run_path}: not a fastkd run directory (no config.yaml)")
    if not rd.model.is_file():
        raise CheckpointError(f"{rd.model} not found: the run has not finished; rerun its command to complete it")
    rd.verify_weights()
    saved = load_yaml(rd.config.read_text(), str(rd.config)) or {}
    cfg = from_dict(merge_layers(saved, *[parse_override(o) for o in overrides]))  # overrides validated like train's
    require_backend(cfg.data.backend)
    acc = make_accelerator(cfg)
    s = build_run_setup(cfg, acc, train=False, eval_sets=(split,))
    if split not in s.eval_pipes:
        raise CheckpointError(f"--split {split}: this run has no {split} split (splits: {', '.join(s.data_sizes)})")
    ckpt.load_weights(s.model, rd.model, model_name=cfg.model, num_classes=s.num_classes, classes=s.classes)
    r = evaluate(s.model, s.eval_pipes[split], acc)
    result = {"run": str(rd.path), "model": cfg.model, "split": split, "accuracy": r.accuracy, "loss": r.loss,
              "examples": r.count}
    if acc.is_main_process:
        write_json(rd.path / f"eval_{split}.json", result)
    return result
