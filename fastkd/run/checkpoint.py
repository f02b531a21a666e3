"""Weights (safetensors, with the model's identity in the metadata) and resumable training state.

Nothing fastkd reads back can execute code: weights are safetensors, the training state is a
safetensors file of tensors beside a JSON file of everything else (optimiser and scheduler
settings, RNG states, history). Every write goes to a temporary name first and is renamed into
place (``fastkd.run.atomic``), so a run killed mid-write keeps the previous checkpoint, and a full
disk is reported as such, naming the file.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import safe_open
from safetensors.torch import save as save_bytes

from .atomic import describe_os_error, write_atomic
from ..errors import CheckpointError

STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors encoding with its JSON header in a fixed key order, so equal tensors and
    metadata give equal bytes (the library's header order varies between calls)."""
    raw = save_bytes(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8-byte alignment
    return len(header).to_bytes(8, "little") + header + raw[8 + n:]


def save_weights(model: torch.nn.Module, path: Path, *, model_name: str, num_classes: int,
                 classes: list[str] | None = None, extra: dict | None = None) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"fastkd_model": model_name, "num_classes": str(num_classes)}
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    meta |= {k: str(v) for k, v in (extra or {}).items()}
    write_atomic(Path(path), safetensors_bytes(state, meta), error=CheckpointError, what="checkpoint")


def read_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc


def load_weights(model: torch.nn.Module, path: Path, *, model_name: str, num_classes: int,
                 classes: list[str] | None = None) -> dict:
    """Load ``path`` into ``model`` after checking it was saved for the same model, class count
    and (when both are known) the same class names in the same order."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    meta = read_metadata(path)
    saved_name, saved_k = meta.get("fastkd_model"), meta.get("num_classes")
    if saved_name is not None and saved_name != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model {saved_name!r}, not {model_name!r}")
    if saved_k is not None and int(saved_k) != num_classes:
        raise CheckpointError(f"{path}: checkpoint has a {saved_k}-class head, the data set has {num_classes} classes")
    if classes is not None and "classes" in meta:
        saved_classes = json.loads(meta["classes"])
        if saved_classes != list(classes):
            first = next((i for i, (a, b) in enumerate(zip(saved_classes, classes)) if a != b), 0)
            raise CheckpointError(f"{path}: weights were trained on the classes {saved_classes}, this data set has "
                                  f"{list(classes)} (first difference at label {first}: {saved_classes[first]!r} vs "
                                  f"{list(classes)[first]!r}); the outputs would mean other classes")
    try:
        state = load_bytes(path.read_bytes())
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
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


# ---- training state: tensors in safetensors, the rest in JSON -----------------------------------
def _encode(obj, tensors: dict):
    """A JSON-able tree with every tensor / array moved into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.frombuffer(bytearray(obj.tobytes()), dtype=torch.uint8)
        return {"__ndarray__": key, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__map__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state")


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        raw = tensors[obj["__ndarray__"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__map__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__map__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(state: dict, folder: Path) -> None:
    """Write ``state`` into ``folder`` as state.safetensors + state.json."""
    folder = Path(folder)
    tensors: dict = {}
    tree = _encode(state, tensors)
    write_atomic(folder / STATE_TENSORS, safetensors_bytes(tensors, {"fastkd_state": "1"}), error=CheckpointError,
                 what="training state")
    write_atomic(folder / STATE_JSON, json.dumps(tree, sort_keys=True), error=CheckpointError, what="training state")


def has_state(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / STATE_TENSORS).is_file() and (folder / STATE_JSON).is_file()


def load_state(folder: Path) -> dict:
    folder = Path(folder)
    try:
        tensors = load_bytes((folder / STATE_TENSORS).read_bytes())
        tree = json.loads((folder / STATE_JSON).read_text())
        return _decode(tree, tensors)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder}: unreadable training state ({type(exc).__name__}: {exc}); delete {folder} "
                              "to restart the run from its beginning") from exc


# ---- the run's checkpoints: one folder per epoch, a pointer file naming the latest ---------------
POINTER = "last.json"


def latest_checkpoint(root: Path) -> Path | None:
    """The folder the pointer ``root/last.json`` names, if it exists."""
    root = Path(root)
    try:
        name = json.loads((root / POINTER).read_text())["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = root / name
    return folder if folder.is_dir() and "/" not in name else None


def save_checkpoint(root: Path, epoch: int, write) -> Path:
    """``write(folder)`` fills a fresh folder; it becomes ``root/epoch-NNNN`` and the pointer is
    moved to it in one atomic rename, so at every instant the pointer names a complete
    checkpoint. Older checkpoint folders are removed afterwards."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    current = latest_checkpoint(root)
    name = f"epoch-{epoch:04d}"
    if current is not None and current.name == name:  # never overwrite the folder the pointer names
        name += f"-{os.getpid()}"
    tmp = root / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        shutil.rmtree(root / name, ignore_errors=True)  # an unreferenced leftover of a killed save
        os.replace(tmp, root / name)
    except OSError as exc:
        raise CheckpointError(f"{root / name}: could not write the checkpoint: {describe_os_error(exc, root)}; "
                              "the previous one is kept") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_atomic(root / POINTER, json.dumps({"epoch": epoch, "folder": name}) + "\n", error=CheckpointError,
                 what="checkpoint pointer")
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("epoch-") and p.name != name:
            shutil.rmtree(p, ignore_errors=True)
    return root / name
