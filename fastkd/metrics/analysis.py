"""All metrics of one finished run, from the outputs it saved (no new inference)."""
from __future__ import annotations

import numpy as np
import torch

from .discrimination import VARIANTS
from .registry import RunOutputs, metrics
from ..errors import DataError

def _on(arrays: dict | None, device) -> dict | None:
    if arrays is None:
        return None
    return {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))).to(device)
            for k, v in arrays.items()}


def analyze_outputs(test: dict, train: dict | None = None, *, knn_k: int = 10,
                    cd_variants=VARIANTS, gdv_max_points: int = 20000, device="cpu") -> dict:
    """Every registered metric (fastkd.metrics.registry) that applies to these outputs, computed
    on ``device`` (a run's metrics run where it trained: the GPU when there is one)."""
    outputs = RunOutputs(_on(test, device), _on(train, device), knn_k=knn_k, cd_variants=tuple(cd_variants),
                         gdv_max_points=gdv_max_points)
    return {m.name: m.compute(outputs) for m in metrics() if m.applies(outputs)}


def load_outputs(path) -> dict:
    """A saved ``*_outputs.npz`` as a dict of arrays; an unreadable file is a DataError naming it."""
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: unreadable saved outputs ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in ("labels", "logits", "features") if k not in out]
    if missing:
        raise DataError(f"{path}: saved outputs lack {missing}")
    return out


def analyze_run(run_dir, device="cpu", **kw) -> dict:
    from pathlib import Path
    rd = Path(run_dir)
    test_path = rd / "test_outputs.npz"
    if not test_path.is_file():
        raise DataError(f"{test_path} not found: is {rd} a finished fastkd run?")
    test = load_outputs(test_path)
    train = load_outputs(rd / "train_outputs.npz") if (rd / "train_outputs.npz").is_file() else None
    return analyze_outputs(test, train, device=device, **kw)
