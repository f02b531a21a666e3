"""Everything a student needs from its teacher run: the frozen network, its data (a student reads
its teacher's data unless told otherwise, from every entry point), and its logits on the
training set, computed once and cached in the teacher's folder (fastkd.train.teacher_cache)."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import models
from ..config import Config, build, from_dict, load_yaml, peek
from ..data.fingerprint import data_fingerprint
from ..pipelines import backend_reads
from ..run import checkpoint as ckpt
from ..run.rundir import RunDir, teacher_identity
from . import teacher_cache
from .evaluate import evaluate

# A student reads its teacher's data unless told otherwise: the same source, split of pixels and
# normalisation (the class list is checked when the teacher is loaded).
INHERITED_DATA = ("name", "path", "download", "cache_dir", "image_size", "mean", "std", "on_corrupt")


def load_teacher(run_path: str, num_classes: int, device, classes: list[str] | None = None) -> torch.nn.Module:
    """The frozen teacher of a finished ``fastkd train`` run directory, checked to be trained on
    the same classes (names and order) as the student's data."""
    rd = RunDir(run_path)
    teacher_identity(run_path)  # a finished fastkd run, or a message saying what it is not
    rd.verify_weights()
    tcfg = from_dict(load_yaml(rd.config.read_text(), str(rd.config)) or {})
    teacher = models.create(tcfg.model, num_classes)
    ckpt.load_weights(teacher, rd.model, model_name=tcfg.model, num_classes=num_classes, classes=classes)
    teacher.eval().requires_grad_(False)
    return teacher.to(device)


def teacher_data_layer(run_path: str) -> dict:
    """The teacher run's data source as a config layer for its student."""
    rd = RunDir(run_path)
    teacher_identity(run_path)
    tcfg = load_yaml(rd.config.read_text(), str(rd.config)) or {}
    data = tcfg.get("data", {})
    layer = {k: data[k] for k in INHERITED_DATA if k in data}
    if data.get("backend") and backend_reads(data["backend"]) == "beton":  # a .beton folder: keep the backend
        layer["backend"] = data["backend"]
    return {"data": layer}


def student_config(*, preset: str | None = None, files=(), overrides=(), extra: dict | None = None) -> Config:
    """A student's config: its teacher's data (``teacher_data_layer``) under the preset, files,
    ``extra`` and overrides, so what the user sets still wins. The one rule for the CLI, studies
    and Python callers alike."""
    teacher = peek("distill.teacher", preset=preset, files=files, overrides=overrides, extra=extra)
    layer = teacher_data_layer(str(teacher)) if teacher else None
    return build(preset=preset, files=files, overrides=overrides, extra=extra, inherit=layer)


def data_differences(student: Config, teacher_run: str, fingerprint: str | None = None) -> list[str]:
    """Where the student's resolved data source differs from its teacher's: for the data itself by
    content (the fingerprint each run's identity holds; ``fingerprint``: the student's, when known),
    not by how its path is spelled."""
    teacher_layer = teacher_data_layer(teacher_run)
    out = []
    for k, tv in teacher_layer["data"].items():
        sv = getattr(student.data, k)
        if k != "path" and sv != tv:
            out.append(f"data.{k}: teacher {tv!r}, student {sv!r}")
    theirs = (RunDir(teacher_run).read_marker() or {}).get("identity_fields", {}).get("data")
    ours = fingerprint or data_fingerprint(student.data, backend_reads(student.data.backend))
    if theirs is not None and ours != theirs:
        out.append(f"data content: the student's {student.data.name} at {student.data.path!r} is not the data its "
                   f"teacher was trained on ({teacher_layer['data'].get('path')!r})")
    return out


def cached_teacher_logits(cfg: Config, teacher, train_pipe, acc, *, data: str, train_size: int, num_classes: int,
                          log=None) -> torch.Tensor:
    """The teacher's logits on every training image, as a lookup table on (or beside) the device:
    from the teacher's cache, or one pass over ``train_pipe`` (unaugmented) that fills it. ``log``:
    where the main process reports what happened (None elsewhere)."""
    log = log or (lambda line: None)
    run = Path(cfg.distill.teacher)
    key = teacher_cache.cache_key(cfg, run, data, train_size)
    table, why_not = teacher_cache.load(run, key, num_classes)
    if why_not:
        log(f"teacher cache: rebuilt, the file there was not used: {why_not}")
    if table is None:
        # every process reads the table, so every process gathers it; features are not needed
        out = evaluate(teacher, train_pipe, acc, collect=True, features=False).outputs
        table = out["logits"].astype(teacher_cache.stored_dtype(out["logits"]), copy=False)  # as students read it
        if acc.is_main_process:
            teacher_cache.save(run, key, table)
        log(f"teacher cache: computed {table.shape[0]} rows in {run / 'teacher_cache'}")
    else:
        log(f"teacher cache: read {table.shape[0]} rows from {run / 'teacher_cache'}")
    lookup = teacher_cache.as_lookup(table, acc.device)
    if lookup.device.type != acc.device.type:
        log(f"teacher cache: {lookup.nbytes / 2**30:.1f} GiB does not fit beside the run on {acc.device}: rows are "
            "gathered on the host (one host sync per step)")
    return lookup
