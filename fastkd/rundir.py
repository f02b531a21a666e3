"""A run directory: resolved config, environment, log, checkpoints, metrics and outputs.

    config.yaml        the resolved config (what `--config` would need to rerun it)
    run.json           kind (teacher/student), config hash, seed, versions, hardware, command line
    train.log          one line per epoch
    checkpoints/last/  weights + optimiser/scheduler/RNG state after the last finished epoch
    best.safetensors   the weights picked by train.select (when it is not "last")
    model.safetensors  the final weights (what `fastkd distill --teacher` and `fastkd eval` read)
    metrics.json       written last, atomically: its presence means the run is finished
    test_outputs.npz   per test image: label, logits, penultimate features (+ teacher's, for students)
    train_outputs.npz  the same for the unaugmented training set (train.save_train_outputs)
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import yaml

from .config import diff


class RunDirError(ValueError):
    """The output directory holds something that conflicts with this run."""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunDirError(f"{path}: could not write ({exc})") from exc


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.run_json = self.path / "run.json"
        self.log_file = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last"
        self.best = self.path / "best.safetensors"
        self.model = self.path / "model.safetensors"
        self.metrics = self.path / "metrics.json"
        self.outputs = self.path / "test_outputs.npz"
        self.train_outputs = self.path / "train_outputs.npz"

    def is_finished(self) -> bool:
        return self.metrics.is_file()

    def has_checkpoint(self) -> bool:
        return (self.last / "state.pt").is_file() and (self.last / "model.safetensors").is_file()

    def check_or_start(self, cfg_dict: dict, kind: str, *, overwrite: bool) -> str:
        """'new', 'resume' or 'done'. A directory holding a different run is refused, naming the
        first differing keys, unless ``overwrite`` (which clears it) or unless that run never
        finished an epoch (it stopped while starting, e.g. on a config error: nothing to lose)."""
        if self.config.is_file() and overwrite:
            self.clear()
        if self.config.is_file():
            saved = yaml.safe_load(self.config.read_text()) or {}
            saved_kind = json.loads(self.run_json.read_text()).get("kind") if self.run_json.is_file() else kind
            changes = diff(saved, cfg_dict)
            if not changes and saved_kind == kind:
                if self.is_finished():
                    return "done"
                return "resume" if self.has_checkpoint() else "new"
            if self.is_finished() or self.has_checkpoint():
                what = "; ".join(changes[:5]) if changes else f"kind {saved_kind} -> {kind}"
                raise RunDirError(f"{self.path} already holds a different run ({what}); "
                                  "pass --overwrite to replace it, or choose another --out")
            self.clear()  # the other run never finished an epoch: nothing to lose
        if self.path.exists() and any(self.path.iterdir()):
            raise RunDirError(f"{self.path} exists and is not a fastkd run directory; choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config, yaml.safe_dump(cfg_dict, sort_keys=False))
        return "new"

    def clear(self) -> None:
        for p in (self.config, self.run_json, self.log_file, self.best, self.model, self.metrics, self.outputs,
                  self.train_outputs):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def log(self, line: str) -> None:
        with open(self.log_file, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
