"""Weights (safetensors, with the model's identity in the metadata) and resumable training state.

Every write goes to a temporary name first and is renamed into place, so a run killed mid-write
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or for another model; the message names the file."""


def atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_weights(model: torch.nn.Module, path: Path, *, model_name: str, num_classes: int, extra: dict | None = None) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"fastkd_model": model_name, "num_classes": str(num_classes)} | {k: str(v) for k, v in (extra or {}).items()}
    tmp = atomic_path(path)
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: could not write checkpoint ({exc}); the previous one is kept") from exc


def read_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc


def load_weights(model: torch.nn.Module, path: Path, *, model_name: str, num_classes: int) -> dict:
    """Load ``path`` into ``model`` after checking it was saved for the same model and class count."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    meta = read_metadata(path)
    saved_name, saved_k = meta.get("fastkd_model"), meta.get("num_classes")
    if saved_name is not None and saved_name != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model {saved_name!r}, not {model_name!r}")
    if saved_k is not None and int(saved_k) != num_classes:
        raise CheckpointError(f"{path}: checkpoint has a {saved_k}-class head, the data set has {num_classes} classes")
    state = load_file(str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        details = "; ".join(filter(None, [
            f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
            f"shape mismatch at {shapes[:3]}" if shapes else ""]))
        raise CheckpointError(f"{path}: weights do not fit model {model_name!r} ({details})")
    model.load_state_dict(state)
    return meta


def save_state(state: dict, path: Path) -> None:
    tmp = atomic_path(path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: could not write training state ({exc}); the previous one is kept") from exc


def load_state(path: Path) -> dict:
    try:
        # RNG states hold numpy/python objects, so this is a full unpickle of our own file
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable training state ({exc}); delete the checkpoints folder to restart") from exc


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written directory into place (old one removed only after the swap)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
