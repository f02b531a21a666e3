"""Teacher outputs computed once and read by every student, seed and epoch of that teacher.

In the paper's protocol the student sees the plain normalised image, so the teacher's logits for
an image never change: one pass over the training set replaces a teacher forward in every
distillation step (a ResNet-18 forward costs ~850x a LeNet's). The cache lives in the teacher's
run folder (``teacher_cache/``), keyed by everything that changes the logits: the teacher's
weights, the data's content and the split's rows, the image size, the normalisation, the backend
(its decoder) and the precision. A file whose key does not match is never used: it is rebuilt.
The table is written by the first student that needs it, or already by the teacher run itself
when it computes its training-set outputs at its end (``train.save_train_outputs``, set for every
study teacher): the same pass, under the same key.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from ..run.atomic import write_atomic
from ..data.fingerprint import sha256_file
from ..errors import ConfigError, FastkdError
from ..run.identity import digest
from ..distill import method_class
from ..run.lock import FolderLock
from ..pipelines.registry import training_batches_carry_index
from ..pipelines.spec import make_spec

FORMAT = 2  # 2: the key file also records the table's SHA-256, checked on every read
HALF_ABOVE_BYTES = 1 << 30  # larger tables are stored in float16 (memory-mapped either way)
DEVICE_SHARE = 0.25  # a table taking at most this share of the device's free memory is kept there


def student_view_is_deterministic(cfg) -> bool:
    """True when the student's training images are the plain normalised images (no augmentation)."""
    return make_spec(cfg.augment, **dataclasses.asdict(cfg.aug)).name == "none"


def use_cache(cfg, kind: str) -> bool:
    """Whether a run reads its teacher's outputs from the cache (``distill.cache_teacher``)."""
    mode = cfg.distill.cache_teacher
    if kind != "student" or not cfg.distill.teacher or cfg.distill.gamma == 0 or mode == "off":
        return False
    if not method_class(cfg.distill.method).reads_cached_outputs:
        if mode == "on":
            raise ConfigError(f"distill.cache_teacher=on: distill.method={cfg.distill.method} needs more of the teacher "
                              "than its logits on the student's view, so it runs the teacher live; use auto or off")
        return False
    deterministic = student_view_is_deterministic(cfg)
    if mode == "on" and not deterministic:
        raise ConfigError(f"distill.cache_teacher=on: the student trains with augment={cfg.augment!r}, so the teacher "
                          "sees a different image every epoch and its outputs cannot be computed once; use auto or off")
    indexed = training_batches_carry_index(cfg.data)
    if mode == "on" and not indexed:
        raise ConfigError(f"distill.cache_teacher=on: data.backend={cfg.data.backend} with these options (e.g. "
                          "data.ffcv.order=random) does not say which samples a batch holds, so the cached rows cannot "
                          "be looked up; use data.ffcv.order=fastkd, or distill.cache_teacher=auto or off")
    return deterministic and indexed  # auto: a live teacher where the rows cannot be looked up


def cache_key(cfg, teacher_run: Path, data_fingerprint: str, train_size: int) -> dict:
    d = cfg.data
    return {"format": FORMAT, "teacher_weights": sha256_file(Path(teacher_run) / "model.safetensors")[:24],
            "data": data_fingerprint, "split": "train", "rows": train_size, "limit_train": d.limit_train,
            "val_split": d.val_split, "split_seed": d.split_seed, "image_size": d.image_size, "mean": d.mean,
            "std": d.std, "backend": d.backend, "precision": cfg.train.precision}


def _paths(teacher_run: Path, key: dict) -> tuple[Path, Path]:
    name = digest(key)
    folder = Path(teacher_run) / "teacher_cache"
    return folder / f"train-{name}.npy", folder / f"train-{name}.json"


def load(teacher_run: Path, key: dict, num_classes: int) -> tuple[np.ndarray | None, str | None]:
    """(the cached logits, rows in data-set order, or None; why a file there was not used).

    A table is used only when its key file records exactly this key and the table's bytes still
    have the digest recorded with it: a table swapped in from another teacher, reordered or
    damaged on disk is rebuilt, never trained on."""
    table, meta = _paths(teacher_run, key)
    if not meta.is_file() and not table.is_file():
        return None, None
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None, f"{meta} is unreadable"
    if not isinstance(recorded, dict) or recorded.get("key") != key:
        return None, f"{meta} records another key"
    try:
        if sha256_file(table) != recorded.get("table_sha256"):
            return None, f"{table} does not match the digest recorded with it (changed on disk)"
        arr = np.load(table, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"{table} is unreadable ({exc})"
    if arr.shape != (key["rows"], num_classes):
        return None, f"{table} holds {arr.shape}, not ({key['rows']}, {num_classes})"
    return arr, None


def save(teacher_run: Path, key: dict, logits: np.ndarray, *, locked: bool = False) -> None:
    """Write the table (float16 when large) and its key and digest beside it; a failure costs
    only a rebuild next time, never the run. ``locked``: the caller holds the teacher folder's lock
    (the teacher run itself, leaving the outputs it computed at its end)."""
    table, meta = _paths(teacher_run, key)
    dtype = stored_dtype(logits)
    # unless the caller holds it, the teacher folder's lock: it is not being (re)trained while we write into it
    lock = contextlib.nullcontext() if locked else FolderLock(teacher_run)
    try:
        with lock:
            table.parent.mkdir(exist_ok=True)
            write_atomic(table, lambda f: np.save(f, logits.astype(dtype, copy=False)), what="teacher cache")
            record = {"key": key, "table_sha256": sha256_file(table)}
            write_atomic(meta, json.dumps(record, sort_keys=True), what="teacher cache key")
    except (FastkdError, OSError):  # the folder in use (its lock refused) or the write failed
        pass


def stored_dtype(logits: np.ndarray) -> np.dtype:
    """The dtype a table is stored and read in: float16 when large. A student that computes the
    table uses it in this dtype too, so it trains as every later student that reads the file."""
    return np.dtype(np.float16 if logits.nbytes > HALF_ABOVE_BYTES else np.float32)


def fits_on_device(nbytes: int, free_bytes: int) -> bool:
    return nbytes <= DEVICE_SHARE * free_bytes


def as_lookup(table: np.ndarray, device: torch.device) -> torch.Tensor:
    """The table in its stored dtype (rows are widened to float32 per batch by the loss): on the
    device when it takes at most ``DEVICE_SHARE`` of the device's free memory, so rows are gathered
    there with no host sync; else in pinned host memory (each step then copies its indices to the
    host: a sync, said in the run's log)."""
    t = torch.from_numpy(np.array(table))  # a memory-mapped file is read into memory here
    if device.type != "cuda":
        return t
    if fits_on_device(t.nbytes, torch.cuda.mem_get_info(device)[0]):
        return t.to(device)
    return t.pin_memory()
