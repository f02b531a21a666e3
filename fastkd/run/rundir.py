"""A run directory: resolved config, identity and environment, log, checkpoints, metrics, outputs.

    run.json           fastkd's marker: format, kind, the run's identity (digest and fields),
                       seed, versions, hardware, command line
    config.yaml        the resolved config (what `--config` would need to rerun it)
    train.log          one line per epoch
    checkpoints/       epoch-NNNN/ (weights + optimiser/scheduler/RNG state) and last.json naming
                       the latest complete one
    best.safetensors   the weights picked by train.select (when it is not "last")
    model.safetensors  the final weights (what `fastkd distill --teacher` and `fastkd eval` read)
    metrics.json       written last, atomically: its presence means the run is finished
    test_outputs.npz   per test image: label, logits, penultimate features (+ teacher's, for students)
    train_outputs.npz  the same for the unaugmented training set (train.save_train_outputs)
    .fastkd.lock       held (flock) by the process running it

Safety rules: a folder is touched only while its lock is held; a non-empty folder without
fastkd's marker is never modified; a different run in a fastkd folder is replaced only with
``--overwrite`` or when it never finished an epoch.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import yaml

from .atomic import sweep_temporaries, write_atomic, write_json
from .checkpoint import has_state, latest_checkpoint
from ..config import diff
from ..errors import CheckpointError, RunDirError
from .identity import digest, explain_difference
from .lock import LOCK_NAME, FolderLock
from ..data.fingerprint import sha256_file

MARKER_FORMAT = 1
__all__ = ["RunDir", "RunDirError", "write_atomic", "write_json"]


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.run_json = self.path / "run.json"
        self.log_file = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.best = self.path / "best.safetensors"
        self.model = self.path / "model.safetensors"
        self.metrics = self.path / "metrics.json"
        self.outputs = self.path / "test_outputs.npz"
        self.train_outputs = self.path / "train_outputs.npz"
        self.lock = FolderLock(self.path)

    # ---- state -------------------------------------------------------------------------------
    @property
    def last(self) -> Path | None:
        """The latest complete checkpoint folder, if any."""
        return latest_checkpoint(self.checkpoints)

    def is_finished(self) -> bool:
        return self.metrics.is_file()

    def has_checkpoint(self) -> bool:
        last = self.last
        return last is not None and has_state(last) and (last / "model.safetensors").is_file()

    def read_marker(self) -> dict | None:
        """run.json if fastkd wrote it (a mapping with fastkd's format key), else None."""
        try:
            marker = json.loads(self.run_json.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(marker, dict) and isinstance(marker.get("fastkd_run"), int) and "identity" in marker:
            return marker
        return None

    def record_weights(self) -> None:
        """Record the final weights' SHA-256 in run.json (before metrics.json marks the run finished)."""
        marker = self.read_marker() or {}
        write_json(self.run_json, marker | {"weights_sha256": sha256_file(self.model)})

    def verify_weights(self) -> None:
        """Refuse weights that are not the ones this run wrote (another run's of the same
        architecture copied in, a damaged file); runs finished before digests were recorded pass."""
        recorded = (self.read_marker() or {}).get("weights_sha256")
        if recorded is not None and sha256_file(self.model) != recorded:
            raise CheckpointError(f"{self.model}: these are not the weights this run wrote (their SHA-256 differs "
                                  f"from the one recorded in {self.run_json.name}); restore the file or rerun the run "
                                  "with --overwrite")

    def _is_empty(self) -> bool:
        return not self.path.exists() or all(p.name == LOCK_NAME for p in self.path.iterdir())

    # ---- opening a run (the caller holds the lock) ---------------------------------------------
    def open(self, identity: dict, cfg_dict: dict, *, overwrite: bool, info: dict | None = None) -> str:
        """'new', 'resume' or 'done' for the run ``identity``, after checking the folder's owner."""
        if not self.lock.held:
            raise RunDirError(f"{self.path}: opened without holding its lock (a bug)")
        key = digest(identity)
        if self._is_empty():
            return self._start(identity, cfg_dict, info)
        marker = self.read_marker()
        if marker is None:
            raise RunDirError(f"{self.path} exists, is not empty and is not a fastkd run folder (no run.json written by "
                              "fastkd); nothing in it was changed. Choose another --out, or empty it yourself")
        sweep_temporaries(self.path)
        sweep_temporaries(self.checkpoints)
        if marker["identity"] == key:
            if self.is_finished():
                return "done"
            status = "resume" if self.has_checkpoint() else "new"
            self._refresh(marker, cfg_dict, info)
            return status
        progress = self.is_finished() or self.has_checkpoint()
        if overwrite or not progress:
            self.clear()
            return self._start(identity, cfg_dict, info)
        what = explain_difference(marker.get("identity_fields", {}), identity)
        raise RunDirError(f"{self.path} already holds a different run ({what}); pass --overwrite to replace it, "
                          "or choose another --out")

    def _start(self, identity: dict, cfg_dict: dict, info: dict | None) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        marker = {"fastkd_run": MARKER_FORMAT, "kind": identity["kind"], "identity": digest(identity),
                  "identity_fields": identity} | (info or {})
        write_json(self.run_json, marker)  # first: from here on the folder is provably fastkd's
        write_atomic(self.config, yaml.safe_dump(cfg_dict, sort_keys=False), what="config")
        return "new"

    def _refresh(self, marker: dict, cfg_dict: dict, info: dict | None) -> None:
        """Same run, maybe other execution settings (paths, workers, device): record them."""
        try:
            old = yaml.safe_load(self.config.read_text()) or {}
        except (OSError, yaml.YAMLError):
            old = {}
        changes = diff(old, cfg_dict)
        if changes:
            write_atomic(self.config, yaml.safe_dump(cfg_dict, sort_keys=False), what="config")
            self.log("execution settings changed on resume: " + "; ".join(changes))
        if info:
            write_json(self.run_json, marker | info)

    def clear(self) -> None:
        """Remove fastkd's own files of a previous run (and nothing else)."""
        for p in (self.config, self.run_json, self.log_file, self.best, self.model, self.metrics, self.outputs,
                  self.train_outputs, *self.path.glob("eval_*.json")):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def remove_checkpoints(self) -> None:
        """What only resuming needs: the checkpoints and the selected weights (copied into
        model.safetensors by then)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.best.unlink(missing_ok=True)

    def log(self, line: str) -> None:
        with open(self.log_file, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def teacher_identity(run_path) -> str:
    """The identity digest of a finished teacher run (its run.json), checked to be finished."""
    rd = RunDir(run_path)
    marker = rd.read_marker()
    if marker is None:
        raise CheckpointError(f"distill.teacher: {run_path} is not a fastkd run directory (no run.json written by "
                              "fastkd train)")
    if not rd.is_finished() or not rd.model.is_file():
        raise CheckpointError(f"distill.teacher: {rd.path} has not finished (no metrics.json / model.safetensors); "
                              f"rerun its `fastkd train ... --out {run_path}` command to complete it")
    return marker["identity"]
