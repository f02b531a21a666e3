"""All metrics of one finished run, from the outputs it saved (no new inference)."""
from __future__ import annotations

import numpy as np
import torch

from .calibration import calibration, reliability_bins
from .discrimination import VARIANTS, class_discrimination
from .fidelity import fidelity
from .knn import knn_accuracy, knn_purity
from ..errors import DataError

REPRESENTATIONS = ("softmax", "logits", "features")


def _representation(outputs, name: str, prefix: str = "") -> torch.Tensor:
    logits = outputs[prefix + "logits"]
    if name == "softmax":
        return torch.softmax(logits.double(), 1)
    return outputs[prefix + ("features" if name == "features" else "logits")]


def _on(arrays: dict | None, device) -> dict | None:
    if arrays is None:
        return None
    return {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))).to(device)
            for k, v in arrays.items()}


def analyze_outputs(test: dict, train: dict | None = None, *, knn_k: int = 10,
                    cd_variants=VARIANTS, gdv_max_points: int = 20000, device="cpu") -> dict:
    """Class discrimination per representation and variant, k-NN purity/accuracy of the
    penultimate features, calibration and (for students) fidelity to the teacher, computed on
    ``device`` (a run's metrics run where it trained: the GPU when there is one)."""
    test, train = _on(test, device), _on(train, device)
    labels = test["labels"]
    # the paper variant's L counts the network's predicted classes, on every representation
    predictions = test["logits"].argmax(1)
    out: dict = {"calibration": calibration(test["logits"], labels),
                 "reliability": reliability_bins(test["logits"], labels), "class_discrimination": {}}
    for rep in REPRESENTATIONS:
        x = _representation(test, rep)
        out["class_discrimination"][rep] = {}
        for v in cd_variants:
            if v == "gdv" and len(x) > gdv_max_points:
                continue  # quadratic in N; skipped on large sets (use fastkd metric directly)
            try:
                r = class_discrimination(x, labels, v, predictions=predictions)
                out["class_discrimination"][rep][v] = {"score": r.score, "intra": r.intra, "inter": r.inter}
            except ValueError as exc:  # undefined here: one predicted class, a class with < 2 points
                out["class_discrimination"][rep][v] = {"undefined": str(exc)}
    k = min(knn_k, len(labels) - 1)
    out["knn"] = {"k": k, "purity_features": knn_purity(test["features"], labels, k),
                  "purity_logits": knn_purity(test["logits"], labels, k)}
    if train is not None:
        out["knn"]["accuracy_features"] = knn_accuracy(train["features"], train["labels"], test["features"], labels, k)
    if "teacher_logits" in test:
        out["fidelity"] = fidelity(test["teacher_logits"], test["logits"])
    return out


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
